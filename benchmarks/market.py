"""The market on the shipped scenarios and the stress set, in both modes (BENCHMARKS.md).

Each scenario runs offline (`sim.offline.run_offline`: the co-simulation's decisions without
mosaik and chain, tested equal on the quick scenario) in the group mode and the seed paper's
mode, and prints one row per run: every limit of the ground truth (`sim.results.limits`),
the slots stage 2 found no feasible dispatch for, PV curtailed, the fleet's energy cost
(import x the substation price, export valued at the same price) and the slot-to-slot
movement of the bands and lambda per group.

    .venv/bin/python benchmarks/market.py [--json FILE] [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import yaml

from sim.offline import run_offline, run_own_plan
from sim.oracle.report import home_energy_cost
from sim.results.limits import limit_summary
from sim.results.writer import stability
from sim.scenario import SCENARIOS_DIR, load_scenario, override

OWN_PLAN = "own plan"  # the homes without a market, at the substation price
SCENARIOS = [
    SCENARIOS_DIR / "default.yaml",
    SCENARIOS_DIR / "quick.yaml",
    *sorted((SCENARIOS_DIR / "stress").glob("*.yaml")),
]


def measure(path: Path, mode: str, changes: dict | None = None) -> dict:
    """One row; `mode` "own plan" runs the homes without a market (`run_own_plan`)."""
    start = time.perf_counter()
    market = mode if mode != OWN_PLAN else "group"
    scenario = override(load_scenario(path), {"dso.mode": market, **(changes or {})})
    runner = run_own_plan if mode == OWN_PLAN else run_offline
    run = runner(scenario, grid_tables=False)
    slots, homes = run.tables["slots"], run.tables["homes"]
    groups = run.tables.get("groups", pd.DataFrame())
    no_market = {"band_high_step_mean_usd_per_kwh": float("nan"), "lambda_step_mean": float("nan")}
    d, slot_h = run.scenario.dso, run.scenario.time.slot_s / 3600
    return {
        "scenario": path.stem,
        "mode": mode,
        **limit_summary(slots, (d.v_min_pu, d.v_max_pu), slot_h, d.ampacity_factor),
        "stage2_infeasible_slots": int(slots.get("dso_infeasible", pd.Series(dtype=bool)).sum()),
        "energy_cost_usd": float(home_energy_cost(run.tables, slot_h).sum()),
        "comfort_violations": int((homes.comfort_violation_c > 1e-6).sum()),
        **(stability(groups) or no_market),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def row(m: dict) -> str:
    out = str(m["voltage_violations"])
    if m["voltage_violations"]:
        out += f" ({m['worst_undervoltage_pu']:.4f} below, {m['worst_overvoltage_pu']:.4f} above)"
    return (
        f"| {m['scenario']} | {m['mode']} | {out} | {m['slots_with_line_overload']} (max "
        f"{m['max_line_loading_pct']:.1f} %) | {m['slots_with_trafo_overload']} | "
        f"{m['stage2_infeasible_slots']} | {m['pv_curtailed_kwh']:.0f} | "
        f"{m['energy_cost_usd']:.1f} | {m['comfort_violations']} | {m['lambda_step_mean']:.3f} | "
        f"{m['band_high_step_mean_usd_per_kwh']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", type=Path, default=SCENARIOS)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["group", "paper"],
        choices=["group", "paper", OWN_PLAN],
        help=f'market modes to run; "{OWN_PLAN}": the homes without a market',
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="scenario keys to change in every run, e.g. dso.band_damping=0.5",
    )
    args = parser.parse_args()
    print(
        "| scenario | mode | slot-phases out of band | slots with a line above rating | "
        "transformer | stage-2 infeasible slots | PV curtailed kWh | energy cost $ | "
        "comfort violations | mean lambda step | mean p_high step $/kWh |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = yaml.safe_load(value)
    results = []
    for path in args.scenarios:
        for mode in args.modes:
            results.append(measure(path, mode, changes))
            print(row(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
