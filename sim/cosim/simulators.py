"""mosaik simulators: thin adapters over the plain objects of a run.

Each simulator has one entity and steps at the protocol phases of every slot it takes part
in (see `Schedule`). The chain is shared state outside mosaik's data flow, so the chain
simulator moves the chain clock first at every phase (everyone depends on its `clock`), and
order within a slot follows simulated time, never mosaik's scheduling within one instant.

Data flows (the only mosaik connections):
    Chain -> DSO, Homes             clock (chain timestamp, s)
    DSO, Homes -> Chain             done (time-shifted by 1 s): a barrier, so the chain clock
                                    never runs past a phase before DSO and homes finished it
                                    (initial value -1: nothing done; mosaik drops an initial
                                    value of None and then warns that the persistent
                                    attribute has no output)
    Homes -> Grid                   p_kw, q_kvar (actual demand per home)
    Grid -> DSO                     substation (time-shifted): the feeder's total draw at the
                                    substation meter in the slot just run (kW, kvar per phase;
                                    initially {}: no reading before round 0)
    Chain, DSO, Homes, Grid -> Recorder   records (rows of the results tables)
No connection carries a home's data to the DSO: the DSO reads the chain and its own
substation meter (the whole feeder's sum).
"""

from __future__ import annotations

import time as wallclock
from collections.abc import Callable
from typing import Any

import mosaik_api_v3
import numpy as np

from sim.errors import BlockhemsError
from sim.market.checkpoint import Checkpoints, dso_state, homes_state
from sim.protocol import PHASE_NAMES, Schedule

STEP_S = "_step_s"  # records key under which a simulator process reports its wall time


def _meta(model: str, attrs: list[str], sim_type: str = "time-based") -> dict:
    return {
        "api_version": "3.0",
        "type": sim_type,
        "models": {model: {"public": True, "params": [], "attrs": attrs}},
    }


class _PhasedSim(mosaik_api_v3.Simulator):
    """One entity that acts at given protocol phases; subclasses implement `act`."""

    MODEL = ""
    ATTRS: list[str] = []
    PHASES: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__(_meta(self.MODEL, self.ATTRS))
        self.eid = self.MODEL
        self.schedule: Schedule | None = None
        self.outputs: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def init(self, sid: str, time_resolution: float = 1.0, **params: Any) -> dict:
        schedule = params.pop("schedule")
        # a simulator in its own process gets the schedule as a dict (mosaik sends JSON)
        self.schedule = Schedule(**schedule) if isinstance(schedule, dict) else schedule
        # Wall time per phase, shared with the caller when it passes a dict to fill.
        self.timings = params.pop("timings", {}).setdefault(self.MODEL, {})
        self.setup(**params)
        return self.meta

    def setup(self, **params: Any) -> None:
        raise NotImplementedError

    def create(self, num: int, model: str, **params: Any) -> list[dict]:
        if num != 1 or model != self.MODEL:
            raise ValueError(f"{type(self).__name__} has exactly one {self.MODEL} entity")
        return [{"eid": self.eid, "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        round_, phase = self.schedule.phase_at(time)
        self.outputs["done"] = time
        # mosaik starts every time-based simulator at 0, a resumed run too
        if phase not in self.PHASES or round_ < self.schedule.first_round:
            return self.schedule.next_after(time, self.PHASES)
        start = wallclock.perf_counter()
        try:
            self.act(round_, phase, inputs.get(self.eid, {}))
        except BlockhemsError as exc:
            # name where the run stopped (a node that went away, ...): one line for the user
            if exc.args and not getattr(exc, "slot_named", False):
                where = f" (slot {round_ + 1} of {self.schedule.n_slots}, {phase})"
                exc.args = (f"{exc.args[0]}{where}", *exc.args[1:])
                exc.slot_named = True  # type: ignore[attr-defined]
            raise
        self.timings[phase] = self.timings.get(phase, 0.0) + wallclock.perf_counter() - start
        return self.schedule.next_after(time, self.PHASES)

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        raise NotImplementedError

    def get_data(self, outputs: dict) -> dict:
        return {
            eid: {attr: self.outputs.get(attr) for attr in attrs} for eid, attrs in outputs.items()
        }


class ChainSim(_PhasedSim):
    """Moves the chain clock to each phase and reports each slot's transactions."""

    MODEL = "Chain"
    ATTRS = ["clock", "records", "done"]
    PHASES = PHASE_NAMES

    def setup(self, chain, t0: int) -> None:
        self.chain, self.t0 = chain, t0
        self._reported = len(chain.records)

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        self.chain.set_time(self.t0 + round_ * self.schedule.slot_s + self.schedule.offsets[phase])
        self.outputs["clock"] = self.chain.now()
        if phase == "record":
            new = self.chain.records[self._reported :]
            self._reported = len(self.chain.records)
            self.outputs["records"] = {"transactions": [r.as_dict() for r in new]}
        else:
            self.outputs["records"] = None


class DSOSim(_PhasedSim):
    """The DSO: prices at the start of the slot, lambda once the aggregates are settled."""

    MODEL = "DSO"
    ATTRS = ["clock", "substation", "records", "done"]
    PHASES = ("price", "lambda")

    def setup(
        self,
        agent,
        t0: int,
        slot_offset: int,
        table_rows: Callable,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.agent, self.t0, self.slot_offset, self.table_rows = agent, t0, slot_offset, table_rows
        self.checkpoints = checkpoints

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        slot = round_ + self.slot_offset
        if phase == "price":
            for reading in (inputs.get("substation") or {}).values():
                if reading:  # the meter of the last slot (none before round 0 and on resuming)
                    self.agent.observe_substation(reading["p_kw"], reading["q_kvar"])
            if self.checkpoints is not None and round_ > 0:
                self.checkpoints.save("dso", round_, dso_state(self.agent))
            deadline = self.t0 + round_ * self.schedule.slot_s + self.schedule.deadline_s
            self.agent.post_prices(round_, slot, deadline)
            self.outputs["records"] = None
        else:
            self.agent.clear(round_, slot)
            self.outputs["records"] = self.table_rows(self.agent, round_, slot)


class HomesSim(_PhasedSim):
    """A fleet (or shard) of homes: submit, recover, dispatch; reports the demand of
    `home_ids` (fleet indices) to the grid."""

    MODEL = "Homes"
    ATTRS = ["clock", "p_kw", "q_kvar", "records", "done"]
    PHASES = ("submit", "recover", "dispatch")

    def setup(
        self,
        agent,
        home_ids: list[int],
        table_rows: Callable,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.agent, self.home_ids, self.table_rows = agent, home_ids, table_rows
        self.checkpoints = checkpoints  # None: this process does not write the homes' side

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        if phase == "submit":
            self.agent.submit(round_)
        elif phase == "recover":
            self.agent.recover(round_)
        else:
            self.agent.dispatch(round_)
            p, q = self.agent.import_kw, self.agent.q_kvar
            self.outputs["p_kw"] = {i: float(p[i]) for i in self.home_ids}
            self.outputs["q_kvar"] = {i: float(q[i]) for i in self.home_ids}
            self.outputs["records"] = self.table_rows(self.agent, round_)
            if self.checkpoints is not None and round_ + 1 < self.schedule.n_slots:
                self.checkpoints.save("homes", round_ + 1, homes_state(self.agent))


class GridSim(_PhasedSim):
    """Three-phase AC power flow of the actual demand of every home (the ground truth), on
    `engine` (`feeder.engine`: pgm or pandapower, see grid_models.engine)."""

    MODEL = "Grid"
    ATTRS = ["p_kw", "q_kvar", "substation", "records"]
    PHASES = ("dispatch",)

    def setup(self, feeder, slot_offset: int, table_rows: Callable, engine: str = "pgm") -> None:
        from grid_models.engine import power_flow_engine

        self.feeder, self.slot_offset, self.table_rows = feeder, slot_offset, table_rows
        self.power_flow = power_flow_engine(feeder, engine)

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        p = np.zeros(self.feeder.n_homes)
        q = np.zeros(self.feeder.n_homes)
        for attr, target in (("p_kw", p), ("q_kvar", q)):
            for per_home in inputs.get(attr, {}).values():  # one dict per homes shard
                for home, value in per_home.items():
                    target[int(home)] = value
        slot = round_ + self.slot_offset
        result = self.power_flow(self.feeder.site_totals(p), self.feeder.site_totals(q), slot=slot)
        self.outputs["records"] = self.table_rows(self.feeder, result, round_)
        self.outputs["substation"] = {
            "p_kw": [float(v) for v in result.p_sub_kw],
            "q_kvar": [float(v) for v in result.q_sub_kvar],
        }


class RecorderSim(_PhasedSim):
    """Appends every simulator's rows to the results tables at the end of each slot, then
    hands the slot's row to `on_slot` (the console's progress bar), if given."""

    MODEL = "Recorder"
    ATTRS = ["records"]
    PHASES = ("record",)

    def setup(self, writer, on_slot: Callable[[dict], None] | None = None) -> None:
        self.writer, self.on_slot = writer, on_slot

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        merged: dict[str, list] = {}
        for payload in inputs.get("records", {}).values():
            for table, rows in (payload or {}).items():
                if table == STEP_S:  # wall seconds a simulator process measured, not a table
                    self.writer.step_s.update(rows)
                    continue
                merged.setdefault(table, []).extend(rows)
        if "slots" in merged:  # every simulator contributes columns to the slot's one row
            row: dict = {}
            for part in merged["slots"]:
                row.update(part)
            merged["slots"] = [row]
        # the slots table last: a slot listed there is complete in every table.
        for table in sorted(merged, key=lambda t: t == "slots"):
            self.writer.append(table, merged[table])
        if self.on_slot is not None and "slots" in merged:
            self.on_slot(merged["slots"][0])
