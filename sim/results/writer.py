"""The results folder of a run: the resolved scenario and tidy CSV tables, slot by slot.

Every table is keyed by ``round``: the market round, which is also the index of the simulated
slot counted from the run's first slot (round 0 starts at ``time.start_hour``; the slot of the
day is ``hour / slot length``; ``slots.csv`` has ``hour``, the run's hour from midnight of the
first day). Transactions outside any round (deployment, registration) have an empty ``round``.

Tables (one row per round and key, units in column names):
    slots.csv         lambda, DSO iterations, losses, substation power, voltage extremes per phase
    groups.csv        price band, revealed [Lmin, Lmax], contributors, lambda of the group
    homes.csv         per home: band, range, cap, actual import, comfort violation
    dlmp.csv          per site (bus-phase): DLMP and its energy/loss/congestion/voltage parts
    voltages.csv      per bus-phase: AC voltage after dispatch (pu)
    lines.csv         per line-phase: current (A) and loading (%)
    transactions.csv  per transaction: call, gas used, latency, block, round

Every table is appended and flushed when its slot finishes, so an interrupted run keeps its
finished slots; `finished_slots` tells which.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from sim.constants import VOLL_USD_PER_KWH
from sim.errors import BlockhemsError
from sim.results.limits import limit_summary, verdict
from sim.scenario import Scenario, dump_scenario

TABLES = ("slots", "groups", "homes", "dlmp", "voltages", "lines", "transactions")


class ResultsError(BlockhemsError, RuntimeError):
    """A results folder is missing or incomplete."""


class ResultsWriter:
    """Append-only tables of one run in `out_dir`."""

    def __init__(self, out_dir: Path, scenario: Scenario) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A new run replaces the tables of an earlier one in the same folder.
        for table in TABLES:
            (self.out_dir / f"{table}.csv").unlink(missing_ok=True)
        (self.out_dir / "scenario.yaml").write_text(dump_scenario(scenario))
        self.step_s: dict[str, float] = {}  # wall seconds reported by simulator processes

    def append(self, table: str, rows: pd.DataFrame | list[dict]) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        if frame.empty:
            return
        path = self.out_dir / f"{table}.csv"
        frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def load_results(out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a results folder (missing tables are empty frames)."""
    out_dir = Path(out_dir)
    if not (out_dir / "scenario.yaml").exists():
        raise ResultsError(f"{out_dir} is not a blockhems results folder (no scenario.yaml)")
    tables = {}
    for table in TABLES:
        path = out_dir / f"{table}.csv"
        tables[table] = pd.read_csv(path) if path.exists() else pd.DataFrame()
    return tables


def finished_slots(out_dir: str | Path) -> list[int]:
    """Rounds whose row made it into slots.csv (written last in each slot)."""
    slots = load_results(out_dir)["slots"]
    return [] if slots.empty else sorted(slots["round"].astype(int).tolist())


KEYS_RANDOM = "random (OS CSPRNG, per home and run)"
KEYS_DETERMINISTIC = (
    "DETERMINISTIC (debug: derived from the scenario name and homes.seed; anyone holding "
    "scenario.yaml can unmask every submission)"
)


def run_keys(out_dir: str | Path) -> str:
    """How the run's keys were made, from its resolved scenario.yaml."""
    data = yaml.safe_load((Path(out_dir) / "scenario.yaml").read_text()) or {}
    deterministic = (data.get("chain") or {}).get("debug_deterministic_keys", False)
    return KEYS_DETERMINISTIC if deterministic else KEYS_RANDOM


def stability(groups: pd.DataFrame, cap_usd_per_kwh: float = VOLL_USD_PER_KWH) -> dict:
    """How much the market moves from slot to slot: the mean absolute change of each group's
    band edges ($/kWh) and lambda between consecutive rounds (averaged over groups), and the
    group-rounds whose band touched the price cap (+-VOLL: stage 1 priced shedding)."""
    if groups.empty:
        return {}
    ordered = groups.sort_values(["group", "round"])
    by_group = ordered.groupby("group")

    def mean_step(column: str) -> float:
        steps = by_group[column].diff().abs()
        return float(steps.groupby(ordered.group).mean().mean())

    at_cap = (ordered.p_high_usd_per_kwh >= cap_usd_per_kwh - 1e-9) | (
        ordered.p_low_usd_per_kwh <= -cap_usd_per_kwh + 1e-9
    )
    return {
        "band_low_step_mean_usd_per_kwh": mean_step("p_low_usd_per_kwh"),
        "band_high_step_mean_usd_per_kwh": mean_step("p_high_usd_per_kwh"),
        "lambda_step_mean": mean_step("lambda_group"),
        "group_rounds_at_price_cap": int(at_cap.sum()),
    }


def summarize(
    out_dir: str | Path, v_band: tuple[float, float], slot_h: float, rating_factor: float = 1.0
) -> dict:
    """End-of-run figures: lambda range, voltage extremes per phase, every limit
    (`sim.results.limits.limit_summary`), energy shifted (kWh the DSO held below the homes'
    low-price demand), comfort, gas per slot."""
    tables = load_results(out_dir)
    slots, homes, tx = tables["slots"], tables["homes"], tables["transactions"]
    out: dict = {"slots": int(len(slots)), "keys": run_keys(out_dir)}
    if slots.empty:
        return out
    out["lambda_min"] = float(slots["lambda"].min())
    out["lambda_max"] = float(slots["lambda"].max())
    for ph in ("a", "b", "c"):
        out[f"v_min_{ph}_pu"] = float(slots[f"v_min_{ph}_pu"].min())
        out[f"v_max_{ph}_pu"] = float(slots[f"v_max_{ph}_pu"].max())
    out.update(limit_summary(slots, v_band, slot_h, rating_factor))
    out["verdict"] = verdict(out)
    smart = homes[homes.smart]
    shifted = (smart.lmax_kw - smart.cap_kw).clip(lower=0) * slot_h
    out["energy_shifted_kwh"] = float(shifted.sum())
    out["comfort_violations"] = int((homes.comfort_violation_c > 1e-6).sum())
    groups = tables["groups"]
    out.update(stability(groups))
    refused = groups["implausible"].astype(bool) if "implausible" in groups else None
    out["implausible_group_rounds"] = 0 if refused is None else int(refused.sum())
    per_slot = tx.dropna(subset=["round"]).groupby("round").gas_used.sum() if len(tx) else tx
    out["gas_per_slot_mean"] = float(per_slot.mean()) if len(per_slot) else 0.0
    out["transactions"] = int(len(tx))
    return out
