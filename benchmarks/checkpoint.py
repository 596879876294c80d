"""What the checkpoints of a resumable run cost (issue 15 item 4, BENCHMARKS.md).

Runs a scenario in process (`run_scenario`, no progress bar) and times, in the same run, every
call that takes the homes' and the DSO's state and writes it (`sim.market.checkpoint`); prints
the run's wall time, the checkpoints' share of it and the size of one file of each side.

    .venv/bin/python benchmarks/checkpoint.py [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sim.cosim.simulators as simulators
import sim.market.checkpoint as checkpoint
from sim.cosim.world import run_scenario
from sim.scenario import SCENARIOS_DIR, load_scenario


def measure(path: Path) -> dict:
    spent = {"homes": 0.0, "dso": 0.0}
    sizes: dict[str, int] = {}
    save, homes_state, dso_state = (
        checkpoint.Checkpoints.save,
        checkpoint.homes_state,
        checkpoint.dso_state,
    )

    def timed(side: str, take):
        def call(agent):
            start = time.perf_counter()
            state = take(agent)
            spent[side] += time.perf_counter() - start
            return state

        return call

    def timed_save(self, component, round_, state):
        start = time.perf_counter()
        save(self, component, round_, state)
        spent[component] += time.perf_counter() - start
        sizes[component] = self.path(component, round_).stat().st_size

    simulators.homes_state = timed("homes", homes_state)
    simulators.dso_state = timed("dso", dso_state)
    checkpoint.Checkpoints.save = timed_save
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run_scenario(load_scenario(path), out, progress=False)
            wall = time.perf_counter() - start
    finally:
        simulators.homes_state, simulators.dso_state = homes_state, dso_state
        checkpoint.Checkpoints.save = save
    total = sum(spent.values())
    return {"scenario": path.stem, "wall_s": wall, "checkpoint_s": total, "bytes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [SCENARIOS_DIR / "default.yaml", SCENARIOS_DIR / "large.yaml"]
    parser.add_argument("scenarios", nargs="*", type=Path, default=default)
    args = parser.parse_args()
    for path in args.scenarios:
        m = measure(path)
        print(
            f"{m['scenario']}: run {m['wall_s']:.1f} s, checkpoints {m['checkpoint_s']:.2f} s "
            f"({100 * m['checkpoint_s'] / m['wall_s']:.1f} %), one file: homes "
            f"{m['bytes'].get('homes', 0):,} B, DSO {m['bytes'].get('dso', 0):,} B"
        )


if __name__ == "__main__":
    main()
