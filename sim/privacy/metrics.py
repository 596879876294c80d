"""Scores of a binary classifier: accuracy, balanced accuracy, ROC AUC, and their uncertainty.

AUC is the Mann-Whitney statistic computed from ranks (ties get mid-ranks, so a tie between a
positive and a negative counts one half). The "iid margins" are the 95 % half-widths of
balanced accuracy and AUC for a classifier whose scores are independent of the labels and of
each other, given only the number of positives and negatives scored. Real scores are not
independent (a home's slots on one day share its routine; features over a window overlap),
so the verdicts use bootstrap intervals that resample whole (unit, day) blocks, where a unit
is a home, or a group for group sums.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


def _binary(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0/1 (or booleans)")
    return y.astype(bool)


def _check_pair(labels: np.ndarray, other: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = _binary(labels)
    v = np.asarray(other, dtype=float)
    if v.shape != y.shape:
        raise ValueError(f"{name} has shape {v.shape}, labels have {y.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite")
    return y, v


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counted as one half. Needs at least one positive and one negative."""
    y, s = _check_pair(labels, scores, "scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positives, {n_neg} negatives")
    ranks = rankdata(s, method="average")  # mid-ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0, 0)."""
    y, s = _check_pair(labels, scores, "scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both classes")
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = np.cumsum(~y_sorted)[last_of_run]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates (0.5 for any label-blind guess)."""
    y = _binary(labels)
    p = _binary(np.asarray(predicted).astype(int))
    if p.shape != y.shape:
        raise ValueError(f"predictions have shape {p.shape}, labels have {y.shape}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("balanced accuracy needs both classes")
    return float(0.5 * ((p & y).sum() / n_pos + (~p & ~y).sum() / n_neg))


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    y = _binary(labels)
    p = _binary(np.asarray(predicted).astype(int))
    return float((p == y).mean())


def chance_margins(n_pos: int, n_neg: int) -> tuple[float, float]:
    """95 % half-widths (balanced accuracy, AUC) around 0.5 for label-blind scores.

    Balanced accuracy: with a positive-prediction rate q independent of the labels,
    Var = q(1-q)(1/n_pos + 1/n_neg)/4, largest at q = 1/2. AUC: the Mann-Whitney null
    variance (n_pos + n_neg + 1) / (12 n_pos n_neg).
    """
    if n_pos < 1 or n_neg < 1:
        raise ValueError("chance margins need both classes")
    ba = Z_95 * np.sqrt((1.0 / n_pos + 1.0 / n_neg) / 16.0)
    auc = Z_95 * np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))
    return float(ba), float(auc)


@dataclass(frozen=True)
class Scores:
    """How well an attacker guessed occupancy on the scored samples."""

    n: int
    n_occupied: int
    base_rate: float  # share of occupied samples
    accuracy: float
    majority_accuracy: float  # accuracy of always guessing the more common class
    balanced_accuracy: float
    balanced_accuracy_ci: tuple[float, float]  # 95 %, bootstrap over (unit, day) blocks
    blocks: int  # independent blocks the bootstrap resampled
    auc: float
    auc_ci: tuple[float, float]
    # 95 % half-widths around 0.5 for label-blind scores that are independent from sample to
    # sample; scores built from overlapping windows and autocorrelated labels spread wider,
    # which the bootstrap intervals capture
    iid_margin_ba: float
    iid_margin_auc: float

    @property
    def intervals_cover_chance(self) -> bool:
        """0.5 inside both bootstrap intervals."""
        ba_lo, ba_hi = self.balanced_accuracy_ci
        auc_lo, auc_hi = self.auc_ci
        return ba_lo <= 0.5 <= ba_hi and auc_lo <= 0.5 <= auc_hi

    @property
    def beats_chance(self) -> bool:
        """Both bootstrap intervals entirely above 0.5."""
        return self.balanced_accuracy_ci[0] > 0.5 and self.auc_ci[0] > 0.5

    def as_dict(self) -> dict:
        out = asdict(self)
        out["intervals_cover_chance"] = self.intervals_cover_chance
        out["beats_chance"] = self.beats_chance
        return out


def score(
    labels: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    blocks: np.ndarray,
    n_boot: int = 400,
    seed: int = 0,
) -> Scores:
    """Point scores and 95 % block-bootstrap intervals; `blocks` names each sample's block
    (e.g. home * days + day); blocks are resampled with replacement."""
    y, s = _check_pair(labels, scores, "scores")
    p = _binary(np.asarray(predicted).astype(int))
    b = np.asarray(blocks)
    if p.shape != y.shape or b.shape != y.shape:
        raise ValueError("labels, scores, predictions and blocks must have the same length")
    if n_boot < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    margin_ba, margin_auc = chance_margins(n_pos, n_neg)
    block_ids, inverse = np.unique(b, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(block_ids.size)]
    rng = np.random.default_rng(seed)
    boot_ba, boot_auc = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, block_ids.size, block_ids.size)
        idx = np.concatenate([members[k] for k in pick])
        yb = y[idx]
        if yb.all() or not yb.any():
            continue  # a resample with one class has no balanced accuracy or AUC
        boot_ba.append(balanced_accuracy(yb, p[idx]))
        boot_auc.append(roc_auc(yb, s[idx]))
    if len(boot_ba) < n_boot // 2:
        raise ValueError("too few bootstrap resamples had both classes; score more blocks")
    return Scores(
        n=int(y.size),
        n_occupied=n_pos,
        base_rate=float(n_pos / y.size),
        accuracy=accuracy(y, p),
        majority_accuracy=float(max(n_pos, n_neg) / y.size),
        balanced_accuracy=balanced_accuracy(y, p),
        balanced_accuracy_ci=_interval(boot_ba),
        blocks=int(block_ids.size),
        auc=roc_auc(y, s),
        auc_ci=_interval(boot_auc),
        iid_margin_ba=margin_ba,
        iid_margin_auc=margin_auc,
    )


def _interval(values: list[float]) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)
