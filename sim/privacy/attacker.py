"""The occupancy attacker: features from an observer's series, logistic regression, scores.

The attacker learns on the first days (labels known, e.g. from watching the houses) and
guesses occupancy on the later days from what the observer saw alone. Features are built the
same way for every observer and contract, from each home's channels:

* level: the value against the home's own typical value (mean and spread over the training
  days);
* deviation: the value against the home's typical value at that hour of day (training days);
* step and |step|: the change from the previous slot;
* activity: how much the value moves over the last hour (occupants switch appliances on and
  off; an empty or sleeping home's load is flat).

So the attacker compares each home with itself; nothing in these features tells the time of
day. A burglar also knows that people sleep at night: that prior alone (the occupancy rate per
hour of day, learned on the training days) is scored as its own reference, and every observer
is scored once more with the hour of day added, to show what observing adds to the prior.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from sim.errors import BlockhemsError
from sim.privacy.metrics import Scores, balanced_accuracy, roc_auc, roc_curve, score
from sim.privacy.observers import ObservedSeries

MAX_ROC_POINTS = 200
FEATURE_KINDS = ("level", "deviation", "step", "abs_step", "activity")
ACTIVITY_WINDOW = (4, 1)  # slots back, slots ahead
OBSERVER_NAMES = {
    "chain-home": "chain observer: each home's submissions",
    "chain-group": "chain observer: group sums on chain",
    "dso": "DSO: unmasked group sums",
}


class AttackError(BlockhemsError, ValueError):
    """The data cannot support the attack as asked (e.g. too few days to split)."""


class LogisticRegression:
    """L2-regularized logistic regression fitted by Newton's method (IRLS), with class weights
    that balance the two classes, so the 0.5 threshold aims at balanced accuracy.

    Features are standardized with the training mean and spread; the intercept is not
    penalized.
    """

    def __init__(self, l2: float = 1e-2, max_iter: int = 100, tol: float = 1e-9) -> None:
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self._mean: np.ndarray | None = None
        self._scale: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y).astype(bool)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"need x (n, d) and y (n,), got {x.shape} and {y.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            raise AttackError(f"training labels are all one class ({n_pos} occupied, {n_neg} not)")
        self._mean = x.mean(axis=0)
        scale = x.std(axis=0)
        self._scale = np.where(scale > 0, scale, 1.0)
        z = np.c_[np.ones(len(x)), (x - self._mean) / self._scale]
        weight = np.where(y, 0.5 * y.size / n_pos, 0.5 * y.size / n_neg)
        penalty = np.full(z.shape[1], self.l2 * y.size)
        penalty[0] = 0.0
        beta = np.zeros(z.shape[1])
        for _ in range(self.max_iter):
            p = _sigmoid(z @ beta)
            grad = z.T @ (weight * (p - y)) + penalty * beta
            hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
            hess[np.diag_indices_from(hess)] += 1e-9  # keeps a separable case solvable
            step = np.linalg.solve(hess, grad)
            beta -= step
            if np.max(np.abs(step)) < self.tol:
                break
        self.intercept_, self.coef_ = float(beta[0]), beta[1:]
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of occupancy."""
        if self.coef_ is None:
            raise RuntimeError("fit the model first")
        z = (np.asarray(x, dtype=float) - self._mean) / self._scale
        return self.intercept_ + z @ self.coef_

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision_function(x) >= 0.0


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # overflow-free logistic


@dataclass(frozen=True)
class Split:
    """Which slots train the attacker and which are scored; the hour of day of each slot."""

    n_days: int
    slots_per_day: int
    train_days: int
    slot_s: int

    def __post_init__(self) -> None:
        if self.n_days < 2:
            raise AttackError(
                f"need at least 2 days (train on some, score on others), got {self.n_days}"
            )
        if not 1 <= self.train_days < self.n_days:
            raise AttackError(
                f"train_days must be in 1..{self.n_days - 1} for {self.n_days} days, "
                f"got {self.train_days}"
            )

    @property
    def n_slots(self) -> int:
        return self.n_days * self.slots_per_day

    @property
    def day(self) -> np.ndarray:
        return np.arange(self.n_slots) // self.slots_per_day

    @property
    def train(self) -> np.ndarray:
        return self.day < self.train_days

    @property
    def hour(self) -> np.ndarray:
        """Hour of day (0..23) of each slot's start."""
        return (np.arange(self.n_slots) % self.slots_per_day) * self.slot_s // 3600


def home_features(
    values: np.ndarray, split: Split, channels: tuple[str, ...]
) -> tuple[np.ndarray, list[str]]:
    """Per channel, each home against its own training days (mean and spread):

    * level: the scaled value;
    * deviation: the scaled value minus the home's mean at that hour of day;
    * step and |step|: the change from the previous slot;
    * activity: the spread of the scaled value over the window from 4 slots back to 1 ahead.
      The submission for slot t+1 is sent during slot t, so a live eavesdropper has it.

    Returns (homes, slots, features) and the feature names. A slot where the observer saw
    nothing gets the home's typical value (feature 0).
    """
    homes, n_slots, n_ch = values.shape
    if n_slots != split.n_slots:
        raise AttackError(f"series has {n_slots} slots, the split expects {split.n_slots}")
    train, hour = split.train, split.hour
    out = np.zeros((homes, n_slots, len(FEATURE_KINDS) * n_ch))
    names: list[str] = []
    for c, channel in enumerate(channels):
        names += [f"{channel}:{kind}" for kind in FEATURE_KINDS]
        x = values[:, :, c]
        ref = np.where(train[None, :], x, np.nan)
        if np.isnan(ref).all(axis=1).any():
            raise AttackError(f"channel {channel}: some home has no value on the training days")
        # the mean, not the median: with occupancy on and off the values are bimodal, and a
        # median sits inside one mode, so "typical" would mean occupied for one home and
        # empty for another
        center = np.nanmean(ref, axis=1, keepdims=True)
        spread = np.nanstd(ref, axis=1, keepdims=True)
        spread = np.where(spread > 0, spread, 1.0)
        z = (x - center) / spread
        typical = np.zeros_like(z)
        for h in np.unique(hour):
            in_hour = np.where(train[None, :] & (hour == h)[None, :], z, np.nan)
            seen = ~np.isnan(in_hour).all(axis=1)
            mean = np.zeros(homes)
            mean[seen] = np.nanmean(in_hour[seen], axis=1)
            typical[:, hour == h] = mean[:, None]
        step = np.zeros_like(z)
        step[:, 1:] = z[:, 1:] - z[:, :-1]
        back, ahead = ACTIVITY_WINDOW
        padded = np.pad(z, ((0, 0), (back, ahead)), mode="edge")
        window = np.stack([padded[:, k : k + n_slots] for k in range(back + ahead + 1)], axis=2)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows become 0 below
            activity = np.nanstd(window, axis=2)
        for k, f in enumerate((z, z - typical, step, np.abs(step), activity)):
            out[:, :, len(FEATURE_KINDS) * c + k] = np.nan_to_num(f, nan=0.0)
    return out, names


def hour_features(split: Split, homes: int) -> tuple[np.ndarray, list[str]]:
    """One-hot hour of day: what a burglar knows without observing anything."""
    hours = np.unique(split.hour)
    onehot = (split.hour[:, None] == hours[None, :]).astype(float)
    return np.broadcast_to(onehot, (homes, *onehot.shape)).copy(), [f"hour={h}" for h in hours]


@dataclass(frozen=True)
class AttackResult:
    observer: str  # "chain-home", "chain-group", "dso" or "prior"
    contract: str  # "baseline", "private" or "" (the prior)
    with_hour: bool  # hour-of-day features added
    features: tuple[str, ...]
    scores: Scores
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    weights: dict[str, float]  # fitted weights on standardized features
    # scores over the homes of each aggregation group: group -> homes, balanced accuracy, AUC
    by_group: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.observer == "prior":
            return "hour of day only (no observation)"
        name = "seed contract" if self.contract == "baseline" else "private contract"
        hour = " + hour of day" if self.with_hour else ""
        return f"{OBSERVER_NAMES[self.observer]}, {name}{hour}"

    def as_dict(self) -> dict:
        return {
            "observer": self.observer,
            "contract": self.contract,
            "with_hour": self.with_hour,
            "label": self.label,
            "features": list(self.features),
            "scores": self.scores.as_dict(),
            "weights": self.weights,
            "by_group": {str(g): v for g, v in self.by_group.items()},
            "roc": {"fpr": list(self.roc_fpr), "tpr": list(self.roc_tpr)},
        }


def attack(
    features: np.ndarray,
    names: list[str],
    occupied: np.ndarray,
    split: Split,
    observer: str,
    contract: str,
    with_hour: bool,
    units: np.ndarray,
    groups: np.ndarray | None = None,
    l2: float = 1e-2,
    seed: int = 0,
) -> AttackResult:
    """Train on the split's training days, score on the others.

    `features` (homes, slots, k); `occupied` (homes, slots) booleans (the ground truth);
    `units` (homes,) the independent unit behind each home's features: the intervals
    resample (unit, day) blocks; `groups` (homes,) optional aggregation group of each home,
    to score the homes of each group apart.
    """
    homes, n_slots, _ = features.shape
    occupied = np.asarray(occupied).astype(bool)
    if occupied.shape != (homes, n_slots):
        raise AttackError(f"labels have shape {occupied.shape}, features {features.shape[:2]}")
    train = np.broadcast_to(split.train, (homes, n_slots))
    units = np.asarray(units)
    if units.shape != (homes,):
        raise AttackError(f"units must have shape ({homes},), got {units.shape}")
    blocks = np.broadcast_to(units[:, None] * split.n_days + split.day[None, :], (homes, n_slots))
    x_train, y_train = features[train], occupied[train]
    x_test, y_test = features[~train], occupied[~train]
    if y_test.all() or not y_test.any():
        raise AttackError("the scored days have only one class of occupancy; score more days")
    model = LogisticRegression(l2=l2).fit(x_train, y_train)
    scores_test = model.decision_function(x_test)
    result = score(y_test, scores_test, scores_test >= 0.0, blocks[~train], seed=seed)
    by_group: dict[int, dict[str, float]] = {}
    if groups is not None:
        group_test = np.broadcast_to(np.asarray(groups)[:, None], (homes, n_slots))[~train]
        for g in np.unique(group_test):
            part = group_test == g
            y_g, s_g = y_test[part], scores_test[part]
            if y_g.all() or not y_g.any():
                continue  # one class only: no balanced accuracy or AUC
            by_group[int(g)] = {
                "homes": int(np.sum(np.asarray(groups) == g)),
                "balanced_accuracy": balanced_accuracy(y_g, s_g >= 0.0),
                "auc": roc_auc(y_g, s_g),
            }
    fpr, tpr = roc_curve(y_test, scores_test)
    if fpr.size > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, fpr.size - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return AttackResult(
        observer,
        contract,
        with_hour,
        tuple(names),
        result,
        tuple(float(v) for v in fpr),
        tuple(float(v) for v in tpr),
        {n: float(w) for n, w in zip(names, model.coef_, strict=True)},
        by_group,
    )


def attack_series(
    series: ObservedSeries,
    occupied: np.ndarray,
    split: Split,
    with_hour: bool = False,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> AttackResult:
    """Build the features of an observer's series and run the attack."""
    feats, names = home_features(series.values, split, series.channels)
    if with_hour:
        hours, hour_names = hour_features(split, feats.shape[0])
        feats, names = np.concatenate([feats, hours], axis=2), names + hour_names
    return attack(
        feats,
        names,
        occupied,
        split,
        series.observer,
        series.contract,
        with_hour,
        series.units,
        groups,
        seed=seed,
    )


def attack_prior(
    occupied: np.ndarray, split: Split, groups: np.ndarray | None = None, seed: int = 0
) -> AttackResult:
    """The reference attacker that observes nothing and knows only the hour of day."""
    feats, names = hour_features(split, occupied.shape[0])
    homes = np.arange(occupied.shape[0])
    return attack(feats, names, occupied, split, "prior", "", True, homes, groups, seed=seed)
