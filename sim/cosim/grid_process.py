"""The grid simulator in its own mosaik process.

    python -m sim.cosim.grid_process HOST:PORT   (mosaik starts it; SIM_CONFIG["GridProcess"])

Nothing in a slot waits for the grid's power flow except the recorder, so in its own process
the power flow of slot r runs while the main process already runs the DSO and the homes of
slot r+1: on two cores that takes the grid off the critical path. It builds the scenario's
feeder itself (the same feeder, by seed) and reports its wall time with its records.

Start-up does not depend on the machine being idle: the process connects to mosaik and
answers its init call (both timed by mosaik's start timeout) after importing only
mosaik_api_v3 and numpy (0.9 s on an idle machine); the heavy part (pandapower, the feeder:
5-14 s, more under load) runs in a thread from init on, and the first step waits for it
(mosaik does not time steps). It ends with the run (`sim.children`).
"""

from __future__ import annotations

import threading
import time as wallclock
from typing import Any

from sim.children import guard_child

if __name__ == "__main__":
    guard_child()  # before the imports below: a Ctrl-C or a dead parent ends it quietly

import mosaik_api_v3  # noqa: E402

from sim.cosim.simulators import STEP_S, GridSim  # noqa: E402


class GridProcessSim(GridSim):
    def setup(self, scenario_yaml: str, slot_offset: int) -> None:
        self.slot_offset = slot_offset
        self._error: BaseException | None = None
        self._ready = threading.Thread(
            target=self._build, args=(scenario_yaml,), name="grid-build", daemon=True
        )
        self._ready.start()

    def _build(self, scenario_yaml: str) -> None:
        try:
            from functools import partial

            import yaml

            from sim.results.tables import grid_rows
            from sim.scenario import build_scenario_feeder, parse_scenario

            start = wallclock.perf_counter()
            scenario = parse_scenario(yaml.safe_load(scenario_yaml), "grid process scenario")
            rows = partial(grid_rows, rating_factor=scenario.dso.ampacity_factor)
            feeder = build_scenario_feeder(scenario)
            GridSim.setup(self, feeder, self.slot_offset, rows, scenario.feeder.engine)
            self.setup_s = wallclock.perf_counter() - start
        except BaseException as exc:  # reported by the first step
            self._error = exc

    def act(self, round_: int, phase: str, inputs: dict[str, Any]) -> None:
        if self._ready is not None:
            self._ready.join()
            self._ready = None
            if self._error is not None:
                raise self._error
        super().act(round_, phase, inputs)
        self.outputs["records"][STEP_S] = {"Grid": sum(self.timings.values())}


def main() -> None:
    mosaik_api_v3.start_simulation(GridProcessSim(), "blockhems grid")


if __name__ == "__main__":
    main()
