"""Benchmark: DSO stage 1 + stage 2 (with the AC check) per slot, and runpp_3ph alone.

    python benchmarks/dso.py [--feeder ieee_eu_lv] [--slots 20] [--json]

Each slot draws a forecast per home (seeded, 0.5-3 kW along an evening peak), runs stage 1
at $0.12/kWh, then stage 2 with every zone's range [0.6, 1.6] x its forecast (all homes HEMS),
timed end to end. Both stage-1 modes are timed: an AC power flow at each forecast
(``stage1_ac=True``, the default) and linearizing at the previous slot's final AC solution.
``stage2_binding_slots`` counts slots where a network limit held lambda below the welfare
optimum. With ``--json`` the last line is one JSON object of the figures (seconds).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grid_models import build_feeder, run_power_flow  # noqa: E402
from grid_models.powerflow import HAS_NUMBA  # noqa: E402
from sim.dso import DSO  # noqa: E402

PRICE = 0.12


def _forecasts(feeder, slots: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = 1.0 + 1.0 * np.sin(np.linspace(0, np.pi, slots))
    return [rng.uniform(0.5, 1.5, feeder.n_homes) * s for s in shape]


def time_slots(feeder, stage1_ac: bool, slots: int, seed: int) -> dict[str, float]:
    dso = DSO(feeder, stage1_ac=stage1_ac)
    zone_of = feeder.homes.zone.to_numpy()
    per_slot, s1_t, s2_t, iters, binding = [], [], [], [], 0
    for k, per_home in enumerate(_forecasts(feeder, slots + 1, seed)):
        t0 = time.perf_counter()
        s1 = dso.stage1(feeder.site_totals(per_home), PRICE, slot=k)
        t1 = time.perf_counter()
        totals = np.bincount(zone_of, weights=per_home, minlength=dso.n_groups)
        s2 = dso.stage2(
            0.6 * totals, 1.6 * totals, s1.p_low, s1.p_high, np.zeros(feeder.n_sites), slot=k
        )
        t2 = time.perf_counter()
        if k == 0:  # first slot compiles the cvxpy problems
            continue
        s1_t.append(t1 - t0)
        s2_t.append(t2 - t1)
        per_slot.append(t2 - t0)
        iters.append(s2.iterations)
        d = totals
        free = np.sum(d * (s1.p_high - s2.cost_g)) / np.sum(d * (s1.p_high - s1.p_low))
        binding += bool(s2.lam < min(max(free, 0.0), 1.0) - 1e-6)  # a limit held lambda down
    return {
        "slot_median_s": statistics.median(per_slot),
        "slot_p90_s": float(np.percentile(per_slot, 90)),
        "stage1_median_s": statistics.median(s1_t),
        "stage2_median_s": statistics.median(s2_t),
        "stage2_mean_iterations": float(np.mean(iters)),
        "stage2_binding_slots": binding,
    }


def time_runpp(feeder, runs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(runs + 1):
        p = feeder.site_totals(rng.uniform(0.5, 2.0, feeder.n_homes))
        t0 = time.perf_counter()
        run_power_flow(feeder, p, 0.33 * p)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeder", default="ieee_eu_lv")
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-homes", type=int, default=None, help="homes of the large feeder")
    parser.add_argument("--json", action="store_true", help="last line: JSON of the figures")
    args = parser.parse_args(argv)

    options = {} if args.n_homes is None else {"n_homes": args.n_homes}
    feeder = build_feeder(args.feeder, **options)
    t0 = time.perf_counter()
    DSO(feeder)
    build_s = time.perf_counter() - t0
    figures: dict[str, object] = {
        "feeder": args.feeder,
        "homes": feeder.n_homes,
        "buses": len(feeder.net.bus),
        "slots": args.slots,
        "numba": HAS_NUMBA,
        "python": platform.python_version(),
        "dso_build_s": build_s,
        "runpp_3ph_median_s": time_runpp(feeder, max(args.slots, 10), args.seed),
    }
    for name, ac in (("stage1_ac", True), ("stage1_reuse", False)):
        for key, value in time_slots(feeder, ac, args.slots, args.seed).items():
            figures[f"{name}_{key}"] = value
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
    if args.json:
        print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
