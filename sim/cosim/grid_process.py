"""The grid simulator in its own mosaik process.

    python -m sim.cosim.grid_process HOST:PORT   (mosaik starts it; SIM_CONFIG["GridProcess"])

Nothing in a slot waits for the grid's power flow except the recorder, so in its own process
the power flow of slot r runs while the main process already runs the DSO and the homes of
slot r+1: on two cores that takes the grid off the critical path. It builds the scenario's
feeder itself (the same feeder, by seed) and reports its wall time with its records.
"""

from __future__ import annotations

from functools import partial

import mosaik_api_v3
import yaml

from sim.cosim.simulators import STEP_S, GridSim
from sim.results.tables import grid_rows
from sim.scenario import build_scenario_feeder, parse_scenario


class GridProcessSim(GridSim):
    def setup(self, scenario_yaml: str, slot_offset: int) -> None:
        scenario = parse_scenario(yaml.safe_load(scenario_yaml), "grid process scenario")
        rows = partial(grid_rows, rating_factor=scenario.dso.ampacity_factor)
        super().setup(build_scenario_feeder(scenario), slot_offset, rows, scenario.feeder.engine)

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        super().act(round_, phase, inputs)
        self.outputs["records"][STEP_S] = {"Grid": sum(self.timings.values())}


def main() -> None:
    mosaik_api_v3.start_simulation(GridProcessSim(), "blockhems grid")


if __name__ == "__main__":
    main()
