"""Wall time of a scenario run with its breakdown by component (default: the default scenario).

    .venv/bin/python benchmarks/cosim.py --json            # scenarios/default.yaml
    .venv/bin/python benchmarks/cosim.py scenarios/quick.yaml --json

Prints the figures; with --json the last line is one JSON object of them: wall_s, setup
seconds per part, stepping seconds per simulator (Chain, DSO, Homes, Grid, Recorder) and
seconds per slot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.cosim.world import run_scenario  # noqa: E402
from sim.scenario import DEFAULT_SCENARIO, load_scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_scenario(scenario, tmp, progress=False)
    n = scenario.time.n_slots
    figures = {
        "scenario": scenario.name,
        "slots": n,
        "cores": os.cpu_count(),
        "wall_s": round(outcome.wall_s, 2),
        "per_slot_s": round(outcome.wall_s / n, 3),
        "setup_s": {k: round(v, 2) for k, v in outcome.setup_s.items()},
        "step_s": {k: round(v, 2) for k, v in outcome.step_s.items()},
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
