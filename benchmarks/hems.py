"""HEMS benchmark: fleet ranges/dispatch timing, training time, ADP vs baselines.

    .venv/bin/python benchmarks/hems.py [--homes 1000] [--pool 50] [--cmp-homes 20] [--json]

1. Builds a fleet of ``--homes`` smart homes (``--pool`` distinct richardsonpy
   household-days shared by the homes to keep the build short; 0 = one per
   home), trains the value functions (timed) and times ``compute_ranges`` and
   ``dispatch`` (lambda = 0.5, cap binding) per slot over ``--slots`` slots.
2. Runs ADP, myopic and the perfect-foresight LP on ``--cmp-homes`` smart
   homes (three fleets, seeds seed..seed+2) for a winter day (20) and a summer
   day (196) with sampled hourly prices, and reports daily costs and gaps.

With ``--json`` the last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.hems import FleetConfig, HEMSFleet, sample_prices  # noqa: E402
from sim.hems.baselines import compare_policies  # noqa: E402


def timing(n_homes: int, pool: int | None, n_slots: int, seed: int) -> dict:
    t0 = time.perf_counter()
    fleet = HEMSFleet(
        FleetConfig(
            seed=seed, n_homes=n_homes, smart_share=1.0, load_profile_pool=pool, battery_export=True
        )
    )
    build_s = time.perf_counter() - t0
    train_s = fleet.train()
    prices = sample_prices(
        np.random.default_rng(seed + 1),
        fleet.config.price_forecast_usd_per_kwh,
        0.15,
        1,
        fleet.config.slot_s,
    )[0]
    t_rng, t_dis = [], []
    viol = 0.0
    cap_over = 0.0
    for slot in range(n_slots):
        p = prices[slot]
        t1 = time.perf_counter()
        lmin, lmax = fleet.compute_ranges(slot, 0.8 * p, 1.2 * p)
        t2 = time.perf_counter()
        cap = 0.5 * lmin + 0.5 * lmax
        imp = fleet.dispatch(slot, cap)
        t3 = time.perf_counter()
        t_rng.append(t2 - t1)
        t_dis.append(t3 - t2)
        viol = max(viol, float(np.max(fleet.records["comfort_violation_c"][:, slot])))
        cap_over = max(cap_over, float(np.max(imp - cap)))
    return {
        "homes": n_homes,
        "load_profile_pool": pool,
        "build_s": round(build_s, 2),
        "train_s": round(train_s, 2),
        "ranges_median_s": round(float(np.median(t_rng)), 4),
        "ranges_max_s": round(float(np.max(t_rng)), 4),
        "dispatch_median_s": round(float(np.median(t_dis)), 4),
        "slots_timed": n_slots,
        "max_comfort_violation_c": viol,
        "max_import_minus_cap_kw": cap_over,
    }


def comparison(n_homes: int, day: int, seeds: list[int]) -> dict:
    """ADP, myopic and perfect foresight summed over fleets built with ``seeds``."""
    adp = myo = pf = 0.0
    viol = 0.0
    t0 = time.perf_counter()
    for seed in seeds:
        cfg = FleetConfig(
            seed=seed, n_homes=n_homes, smart_share=1.0, start_day=day, battery_export=True
        )
        fleet = HEMSFleet(cfg)
        fleet.train()
        prices = sample_prices(
            np.random.default_rng(seed + 7),
            cfg.price_forecast_usd_per_kwh,
            cfg.price_noise,
            1,
            cfg.slot_s,
        )[0]
        res = compare_policies(fleet, prices)
        adp += float(res["adp"].sum())
        myo += float(res["myopic"].sum())
        pf += float(res["perfect"].sum())
        viol = max(viol, float(res["adp_max_violation_c"].max()))
    n = n_homes * len(seeds)
    return {
        "day": day,
        "homes": n,
        "seeds": seeds,
        "adp_usd_per_home": round(adp / n, 4),
        "myopic_usd_per_home": round(myo / n, 4),
        "perfect_usd_per_home": round(pf / n, 4),
        "gap_to_perfect_usd_per_home": round((adp - pf) / n, 4),
        "gap_to_perfect_rel": round((adp - pf) / abs(pf), 4),
        "share_of_myopic_to_perfect_saving_captured": round((myo - adp) / (myo - pf), 4),
        "adp_max_violation_c": viol,
        "compare_s": round(time.perf_counter() - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=0, help="0 = one household per home")
    ap.add_argument("--slots", type=int, default=24)
    ap.add_argument("--cmp-homes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "timing": timing(a.homes, a.pool or None, a.slots, a.seed),
        "comparison": [
            comparison(a.cmp_homes, day, [a.seed, a.seed + 1, a.seed + 2]) for day in (20, 196)
        ],
    }
    tm = out["timing"]
    print(
        f"fleet of {tm['homes']} smart homes: build {tm['build_s']} s, "
        f"training {tm['train_s']} s, ranges {tm['ranges_median_s']} s/slot (median, max "
        f"{tm['ranges_max_s']}), dispatch {tm['dispatch_median_s']} s/slot"
    )
    for c in out["comparison"]:
        print(
            f"day {c['day']}, {c['homes']} homes: $/home/day ADP {c['adp_usd_per_home']}, "
            f"myopic {c['myopic_usd_per_home']}, perfect foresight "
            f"{c['perfect_usd_per_home']}; gap "
            f"{c['gap_to_perfect_usd_per_home']} $/home ({100 * c['gap_to_perfect_rel']:.1f} % "
            f"of |PF|), {100 * c['share_of_myopic_to_perfect_saving_captured']:.1f} % of the "
            f"myopic-to-PF saving captured"
        )
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
