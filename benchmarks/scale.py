"""Wall time per simulated day against the number of homes: chain embedded (revm) or a node,
the HEMS fleet in one process or sharded over processes.

    .venv/bin/python benchmarks/scale.py --json                 # every case, full days
    .venv/bin/python benchmarks/scale.py --homes 55,1000 --modes revm:1,revm:2 --hours 6
    .venv/bin/python benchmarks/scale.py --from-log /tmp/scale.jsonl --write   # table + plot

55 homes is the default scenario (IEEE EU LV); larger fleets are the large-feeder scenario with
`homes.count` set. A mode is BACKEND:SHARDS: revm (in process; with shards > 1 it runs as a
local revm node the processes share) or hardhat (a local hardhat node the run starts). With
--hours the run covers that many hours from 10:00 and the day's wall time is extrapolated:
set-up + stepping x (96 / slots run), marked as such. Each finished case is appended to --log
(JSON lines) at once, so an interrupted sweep keeps what it measured. --write puts a table in
BENCHMARKS.md and the plot in docs/scale.png; with --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.markdown_section import write_section  # noqa: E402
from sim.cosim.world import run_scenario  # noqa: E402
from sim.results.writer import load_results  # noqa: E402
from sim.scenario import SCENARIOS_DIR, load_scenario, override  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "docs" / "scale.png"
SWEEP = (
    "`--log L --homes 55,500,1000 --modes revm:1,revm:2`, then `--homes 2000 --modes "
    "revm:1,revm:2 --hours 6`, then `--homes 55,1000 --modes hardhat:1,hardhat:2 --hours 2`"
)
TARGET_S = 600.0  # issue 6: 1,000 homes per simulated day in at most 10 minutes
SLOTS_PER_DAY = 96


def scenario_for(homes: int, backend: str, shards: int, hours: float | None):
    if homes == 55:
        base = load_scenario(SCENARIOS_DIR / "default.yaml")
        changes: dict = {}
    else:
        base = load_scenario(SCENARIOS_DIR / "large.yaml")
        changes = {"homes.count": homes}
    changes |= {"chain.backend": backend, "homes.shards": shards}
    if hours is not None:
        changes |= {"time.start_hour": 10, "time.hours": hours}
    return override(base, changes, "benchmark settings")


def measure(homes: int, backend: str, shards: int, hours: float | None) -> dict:
    scenario = scenario_for(homes, backend, shards, hours)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcome = run_scenario(scenario, tmp, progress=False)
        wall = time.perf_counter() - start
        slots = scenario.time.n_slots
        # shards build their fleets at their first step, side by side: the slowest counts
        shard_setup = max(
            (v for k, v in outcome.step_s.items() if k.endswith(" setup")), default=0.0
        )
        setup = sum(outcome.setup_s.values()) + shard_setup
        stepped = wall - setup
        homes_table = load_results(tmp)["homes"]
        hems = int(homes_table[homes_table["round"] == 0].smart.sum())
    return {
        "homes": homes,
        "hems_homes": hems,
        "backend": backend,
        "shards": shards,
        "slots": slots,
        "wall_s": round(wall, 1),
        "setup_s": round(setup, 1),
        "day_s": round(setup + stepped * SLOTS_PER_DAY / slots, 1),
        "extrapolated": slots < SLOTS_PER_DAY,
        "setup_parts_s": {k: round(v, 1) for k, v in outcome.setup_s.items()},
        "step_s": {k: round(v, 1) for k, v in outcome.step_s.items()},
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _share(case: dict) -> str:
    """Time share per component over the stepping (power flow, DSO, HEMS, chain)."""
    steps = case["step_s"]
    homes = sum(v for k, v in steps.items() if k.startswith("Homes") and "setup" not in k)
    parts = {"grid": steps.get("Grid", 0.0), "DSO": steps.get("DSO", 0.0), "HEMS": homes}
    parts["chain clock"] = steps.get("Chain", 0.0)
    total = sum(parts.values()) or 1.0
    return ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in parts.items())


def markdown(cases: list[dict], command: str) -> str:
    cores = cases[0]["cores"] if cases else os.cpu_count()
    date = cases[0]["date"] if cases else time.strftime("%Y-%m-%d")
    lines = [
        "<!-- scale:start -->",
        "## Scale: wall time per simulated day (issue 6)",
        "",
        f"Command: `{command}`; the cases of `benchmarks/scale.jsonl` came from {SWEEP}, one "
        "after another, the machine otherwise idle.  ",
        f"Machine: {cores} cores; date {date}. Plot: `docs/scale.png`.",
        "",
        "| homes (HEMS) | chain | processes | slots run | wall time per day | set-up | "
        "stepping shares (of the summed simulator time) |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for c in sorted(cases, key=lambda c: (c["homes"], c["backend"], c["shards"])):
        chain = c["backend"] + (" node" if c["backend"] == "revm" and c["shards"] > 1 else "")
        procs = "1" if c["shards"] == 1 else f"1 + {c['shards']} shards"
        day = f"{c['day_s']:.0f} s" + (" (extrapolated)" if c["extrapolated"] else "")
        lines.append(
            f"| {c['homes']:,} ({c['hems_homes']:,}) | {chain} | {procs} | {c['slots']} | {day} "
            f"| {c['setup_s']:.0f} s | {_share(c)} |"
        )
    lines += [
        "",
        "Extrapolated: set-up + stepping x 96 / slots run (a run of some hours from 10:00). "
        "Set-up includes starting the mosaik simulators (shard processes start one after "
        "another) and the shards' own fleet building and training (side by side). With shards "
        "the HEMS share is each shard's own time (they run at the same time).",
        "<!-- scale:end -->",
    ]
    return "\n".join(lines)


def plot(cases: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    modes = sorted({(c["backend"], c["shards"]) for c in cases})
    for backend, shards in modes:
        pts = sorted(
            (c["homes"], c["day_s"], c["extrapolated"])
            for c in cases
            if (c["backend"], c["shards"]) == (backend, shards)
        )
        label = f"{backend}{' node' if backend == 'revm' and shards > 1 else ''}, "
        label += "1 process" if shards == 1 else f"{shards} shard processes"
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        for homes, day_s, extrapolated in pts:  # hollow: extrapolated from part of a day
            face = "white" if extrapolated else line.get_color()
            ax.plot(homes, day_s, "o", color=line.get_color(), markerfacecolor=face)
    ax.axhline(TARGET_S, color="0.4", ls="--", lw=1, label="target for 1,000 homes (10 min)")
    ax.set_xlabel("homes on the feeder")
    ax.set_ylabel("wall time per simulated day (s)")
    ax.set_title("blockhems: scale (96 slots of 15 min; hollow = extrapolated)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=150)
    plt.close(fig)
    return PLOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--homes", default="55,500,1000,2000")
    parser.add_argument("--modes", default="revm:1,revm:2,hardhat:1,hardhat:2")
    parser.add_argument("--hours", type=float, default=None, help="run this many hours")
    parser.add_argument("--log", default=None, help="append each case to this JSON-lines file")
    parser.add_argument("--from-log", default=None, help="only render the cases of this log")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md and the plot")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    args = parser.parse_args()

    if args.from_log:
        cases = [json.loads(line) for line in Path(args.from_log).read_text().splitlines()]
    else:
        cases = []
        for homes in (int(h) for h in args.homes.split(",")):
            for mode in args.modes.split(","):
                backend, shards = mode.split(":")
                case = measure(homes, backend, int(shards), args.hours)
                print(json.dumps(case), file=sys.stderr)
                cases.append(case)
                if args.log:
                    with open(args.log, "a") as log:
                        log.write(json.dumps(case) + "\n")
    section = markdown(cases, "python benchmarks/scale.py " + " ".join(sys.argv[1:]))
    print(section)
    if args.write:
        write_section(section, "scale")
        print(f"plot: {plot(cases)}")
    if args.json:
        print(json.dumps({"cases": cases}, sort_keys=True))


if __name__ == "__main__":
    main()
