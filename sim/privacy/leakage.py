"""What the public outputs tell about a group's dispatched total (issue 16 item 5).

The price bands and lambda are public (everyone reads them on chain), and the bands of round
r+1 are formed from round r's dispatched group totals. This measures how much of a group's
dispatched total (the sum of its homes' actual import in a round, kW) a linear model explains
from public data:

* `clock_price`: the clock (hour of day as sine and cosine of the day and half-day) and the
  substation energy price, with a per-group intercept (group ids and sizes are public);
* `own_round`: the same plus the group's band (p_low, p_high) and lambda of round r, what the
  chain shows by the end of round r;
* `public_outputs`: the same plus the group's band of round r+1, which the DSO formed from
  round r's dispatch.

R^2 in sample (ordinary least squares over every round and group) and out of sample (the
rounds cut into `folds` contiguous blocks, each predicted by a model fitted on the others).
The gain over the first model is what the public outputs leak beyond the clock. Out of sample
on one day is fragile: a held-out block of rounds with bands at the price caps (+-5 $/kWh)
lies outside what the others spanned, and a linear fit extrapolates wildly (R^2 far below 0).

Works on any results folder of `blockhems run` (slots, groups, homes; Parquet or CSV); the
market's band formation may change, so rerun it: `blockhems leakage RESULTS_DIR`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import BlockhemsError
from sim.table_io import read_table

FOLDS = 5


class LeakageError(BlockhemsError, ValueError):
    """The results folder cannot support the measurement (missing tables, too few rounds)."""


@dataclass(frozen=True)
class LeakageReport:
    results_dir: str
    rounds: int
    groups: int
    samples: int  # (round, group) pairs with a next round
    target: str
    r2_clock_price: float
    r2_own_round: float
    r2_public_outputs: float
    r2_clock_price_out_of_sample: float
    r2_own_round_out_of_sample: float
    r2_public_outputs_out_of_sample: float
    folds: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _table(results_dir: Path, name: str) -> pd.DataFrame:
    frame = read_table(results_dir, name)
    if frame.empty:
        raise LeakageError(f"{results_dir} has no {name} table (a `blockhems run` results folder?)")
    return frame


def leakage_frame(results_dir: str | Path) -> pd.DataFrame:
    """One row per (round, group) that has a next round: target and public features."""
    results_dir = Path(results_dir)
    slots, groups, homes = (_table(results_dir, n) for n in ("slots", "groups", "homes"))
    hems = homes[homes.group >= 0]
    total = hems.groupby(["round", "group"]).import_kw.sum().rename("dispatched_kw")
    frame = groups.set_index(["round", "group"])[["p_low_usd_per_kwh", "p_high_usd_per_kwh"]]
    frame = frame.join(total, how="inner").reset_index()
    clock = slots.set_index("round")[["hour", "energy_price_usd_per_kwh", "lambda"]]
    frame = frame.join(clock, on="round")
    if "lambda_group" in groups:  # the group's own lambda where the DSO posts one per group
        lam = groups.set_index(["round", "group"]).lambda_group.rename("lambda_posted")
        frame = frame.join(lam, on=["round", "group"])
    else:
        frame["lambda_posted"] = frame["lambda"]
    nxt = groups[["round", "group", "p_low_usd_per_kwh", "p_high_usd_per_kwh"]].copy()
    nxt["round"] -= 1
    nxt = nxt.rename(
        columns={"p_low_usd_per_kwh": "p_low_next", "p_high_usd_per_kwh": "p_high_next"}
    )
    frame = frame.merge(nxt, on=["round", "group"], how="inner")
    return frame.sort_values(["round", "group"]).reset_index(drop=True)


def _design(frame: pd.DataFrame, public: bool, next_band: bool = True) -> np.ndarray:
    day = 2 * np.pi * (frame.hour.to_numpy() % 24) / 24
    columns = [np.sin(day), np.cos(day), np.sin(2 * day), np.cos(2 * day)]
    columns.append(frame.energy_price_usd_per_kwh.to_numpy())
    groups = sorted(frame.group.unique())
    columns += [(frame.group.to_numpy() == g).astype(float) for g in groups]  # intercepts
    if public:
        for name in ("p_low_usd_per_kwh", "p_high_usd_per_kwh", "lambda_posted"):
            columns.append(frame[name].to_numpy())
        if next_band:
            columns += [frame.p_low_next.to_numpy(), frame.p_high_next.to_numpy()]
    return np.column_stack(columns)


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    residual = float(np.sum((y - fitted) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - residual / total if total > 0 else float("nan")


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return coef


def r2_in_and_out_of_sample(
    x: np.ndarray, y: np.ndarray, rounds: np.ndarray, folds: int = FOLDS
) -> tuple[float, float]:
    """R^2 of least squares in sample, and over `folds` contiguous blocks of rounds."""
    in_sample = _r2(y, x @ _fit(x, y))
    order = np.unique(rounds)
    blocks = np.array_split(order, folds)
    predicted = np.empty_like(y)
    for block in blocks:
        test = np.isin(rounds, block)
        predicted[test] = x[test] @ _fit(x[~test], y[~test])
    return in_sample, _r2(y, predicted)


def public_output_leakage(results_dir: str | Path, folds: int = FOLDS) -> LeakageReport:
    """The measurement on one results folder (see the module docstring)."""
    frame = leakage_frame(results_dir)
    n_rounds = frame["round"].nunique()
    if n_rounds < 2 * folds:
        raise LeakageError(
            f"{results_dir}: {n_rounds} rounds with a next round; need at least {2 * folds}"
        )
    y, rounds = frame.dispatched_kw.to_numpy(), frame["round"].to_numpy()
    base = r2_in_and_out_of_sample(_design(frame, False), y, rounds, folds)
    own = r2_in_and_out_of_sample(_design(frame, True, next_band=False), y, rounds, folds)
    public = r2_in_and_out_of_sample(_design(frame, True), y, rounds, folds)
    return LeakageReport(
        results_dir=str(results_dir),
        rounds=int(n_rounds),
        groups=int(frame.group.nunique()),
        samples=int(len(frame)),
        target="a group's dispatched total: sum of its homes' import in the round (kW)",
        r2_clock_price=base[0],
        r2_own_round=own[0],
        r2_public_outputs=public[0],
        r2_clock_price_out_of_sample=base[1],
        r2_own_round_out_of_sample=own[1],
        r2_public_outputs_out_of_sample=public[1],
        folds=folds,
    )


def write_leakage(report: LeakageReport, out_dir: str | Path) -> Path:
    """leakage.json in `out_dir`."""
    path = Path(out_dir) / "leakage.json"
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return path
