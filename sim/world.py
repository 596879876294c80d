"""Assemble and run one scenario: build the parts, connect them in mosaik, write results.

`build_parts` creates the plain objects (feeder for the grid, the DSO's own copy of the
feeder, the HEMS fleet, the chain with the contract and registered homes); `build_world`
wires them into a mosaik World; `run_scenario` does both, runs, and returns a summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import mosaik
import numpy as np

from sim import simulators as sims
from sim.agents import DSOAgent, HomesAgent
from sim.chain.connection import Chain, connect
from sim.chain.market import setup_market
from sim.dso import DSO, DSOLimits
from sim.forecast import DSOForecaster, load_research_profile_kw
from sim.hems import FleetConfig, HEMSConfigError, HEMSFleet
from sim.results import ResultsWriter
from sim.scenario import Scenario, ScenarioError, build_scenario_feeder, resolve_scenario
from sim.tables import dso_rows, grid_rows, homes_rows

SIM_CONFIG = {
    name: {"python": f"sim.simulators:{name}"}
    for name in ("ChainSim", "DSOSim", "HomesSim", "GridSim", "RecorderSim")
}


@dataclass(frozen=True)
class Flow:
    """One mosaik connection of the world, by model name (for audits and tests)."""

    src: str
    dest: str
    attrs: tuple[str, ...]


@dataclass
class Parts:
    scenario: Scenario
    schedule: sims.Schedule
    grid_feeder: object
    dso_agent: DSOAgent
    homes_agent: HomesAgent
    chain: Chain
    t0: int
    setup_s: dict[str, float] = field(default_factory=dict)


def aggregation_groups(feeder, smart: np.ndarray, min_group_size: int) -> dict[int, list[int]]:
    """Groups of HEMS homes: the feeder's zones restricted to smart homes, with a zone that
    keeps fewer than `min_group_size` smart homes merged into its neighbour on the same phase."""
    homes = feeder.homes
    groups: dict[int, list[int]] = {}
    for phase, zones in feeder.zones.groupby("phase", sort=False):
        pending: list[int] = []
        phase_groups: list[tuple[int, list[int]]] = []
        for zone in zones.zone:
            members = homes.home_id[(homes.zone == zone) & smart[homes.home_id]].tolist()
            pending += members
            if len(pending) >= min_group_size:
                phase_groups.append((int(zone), pending))
                pending = []
        if pending:
            if not phase_groups:
                raise ScenarioError(
                    f"phase {phase} has only {len(pending)} smart homes, fewer than "
                    f"aggregation.min_group_size {min_group_size}: raise homes.smart_share or "
                    "lower aggregation.min_group_size"
                )
            phase_groups[-1][1].extend(pending)
        groups.update(phase_groups)
    return groups


def _fleet(scenario: Scenario, n_homes: int) -> HEMSFleet:
    homes, t = scenario.homes, scenario.time
    data = {
        "seed": homes.seed,
        "n_homes": n_homes,
        "smart_share": homes.smart_share,
        "slot_s": t.slot_s,
        "start_day": t.day_of_year,
        "n_days": t.days,
        "ranges": homes.ranges,
        "load_profile_pool": homes.load_profile_pool,
        "battery_export": homes.battery_export,
    }
    try:
        return HEMSFleet(FleetConfig.from_dict(data))
    except HEMSConfigError as exc:
        raise ScenarioError(f"scenario {scenario.name}: homes.{exc}") from None


def build_parts(scenario: Scenario, chain: Chain | None = None) -> Parts:
    """Everything a run needs, before mosaik starts (timed per component)."""
    setup_s: dict[str, float] = {}
    start = time.perf_counter()
    grid_feeder = build_scenario_feeder(scenario)
    dso_feeder = build_scenario_feeder(scenario)  # the DSO's own model of the network
    scenario = resolve_scenario(scenario, grid_feeder)
    setup_s["grid"] = time.perf_counter() - start

    start = time.perf_counter()
    fleet = _fleet(scenario, grid_feeder.n_homes)
    fleet.train()
    setup_s["hems_training"] = time.perf_counter() - start

    t = scenario.time
    groups = aggregation_groups(grid_feeder, fleet.smart, scenario.aggregation.min_group_size)
    start = time.perf_counter()
    spec = scenario.dso
    ratings = {}
    if spec.ampacity_factor != 1.0:
        ratings = (dso_feeder.net.line.max_i_ka * 1000.0 * spec.ampacity_factor).to_dict()
    limits = DSOLimits(
        spec.v_min_pu,
        spec.v_max_pu,
        line_ampacity_a=ratings,
        v_margin_pu=spec.v_margin_pu,
        i_margin_pct=spec.i_margin_pct,
    )
    dso = DSO(dso_feeder, limits=limits, groups=groups, ac_engine=spec.ac_engine)
    profile = load_research_profile_kw(t.day_of_year, t.days, t.slot_s, fleet.weather.ghi_w_m2)
    sizes = [len(groups[int(g)]) for g in dso.group_ids]
    forecaster = DSOForecaster(dso_feeder, fleet.smart, dso.weights, sizes, profile)
    setup_s["dso"] = time.perf_counter() - start

    start = time.perf_counter()
    chain = chain or _connect(scenario)
    market, clients = open_market(scenario, chain, groups)
    t0 = chain.now() + 60
    setup_s["chain"] = time.perf_counter() - start

    schedule = sims.Schedule(
        t.slot_s,
        t.n_slots,
        scenario.chain.block_time_s,
        scenario.chain.deadline_s,
        scenario.chain.recovery_s,
    )
    day_price = [
        spec.energy_price(int(s * t.slot_s // 3600)) for s in range(t.first_slot + t.n_slots)
    ]
    energy_price = day_price[t.first_slot :]
    dso_agent = DSOAgent(dso, market.dso, forecaster, energy_price, spec.mode, t.slot_s / 3600)
    homes_agent = HomesAgent(
        fleet, clients, t.first_slot, scenario.chain.dropout_probability, scenario.homes.seed
    )
    homes_agent.warm_up(np.asarray(day_price[: t.first_slot]))
    return Parts(scenario, schedule, grid_feeder, dso_agent, homes_agent, chain, t0, setup_s)


def open_market(scenario: Scenario, chain: Chain, groups: dict[int, list[int]]):
    """Deploy the contract, register every HEMS home in its group; returns the market and
    each home's chain client by home id."""
    home_ids = sorted(h for members in groups.values() for h in members)
    group_of = {h: g for g, members in groups.items() for h in members}
    market = setup_market(
        chain,
        [group_of[h] for h in home_ids],
        seed=f"{scenario.name}/{scenario.homes.seed}",
        min_group_size=scenario.aggregation.min_group_size,
        recovery_period_s=scenario.chain.recovery_s,
    )
    return market, dict(zip(home_ids, market.homes, strict=True))


def _connect(scenario: Scenario) -> Chain:
    spec = scenario.chain
    return connect("rpc", spec.url) if spec.backend == "rpc" else connect(spec.backend)


def build_world(parts: Parts, writer: ResultsWriter, timings: dict | None = None) -> mosaik.World:
    """The mosaik world of a run: five simulators and their data flows."""
    world = mosaik.World(SIM_CONFIG, skip_greetings=True)
    schedule, t = parts.schedule, parts.scenario.time
    timings = {} if timings is None else timings
    chain = world.start(
        "ChainSim", schedule=schedule, timings=timings, chain=parts.chain, t0=parts.t0
    ).Chain()
    dso = world.start(
        "DSOSim",
        schedule=schedule,
        timings=timings,
        agent=parts.dso_agent,
        t0=parts.t0,
        slot_offset=t.first_slot,
        table_rows=dso_rows,
    ).DSO()
    homes = world.start(
        "HomesSim",
        schedule=schedule,
        timings=timings,
        agent=parts.homes_agent,
        home_ids=list(range(parts.homes_agent.fleet.n_homes)),
        table_rows=homes_rows,
    ).Homes()
    grid = world.start(
        "GridSim",
        schedule=schedule,
        timings=timings,
        feeder=parts.grid_feeder,
        slot_offset=t.first_slot,
        table_rows=grid_rows,
    ).Grid()
    recorder = world.start("RecorderSim", schedule=schedule, writer=writer).Recorder()

    flows: list[Flow] = []

    def connect(src, dest, *attrs: str, **options) -> None:
        world.connect(src, dest, *attrs, **options)
        flows.append(Flow(src.type, dest.type, attrs))

    connect(chain, dso, "clock")
    connect(chain, homes, "clock")
    for actor in (dso, homes):
        connect(actor, chain, "done", time_shifted=True, initial_data={"done": None})
    connect(homes, grid, "p_kw", "q_kvar")
    for source in (chain, dso, homes, grid):
        connect(source, recorder, "records")
    world.blockhems_flows = flows
    return world


@dataclass
class RunOutcome:
    out_dir: Path
    wall_s: float
    setup_s: dict[str, float]
    step_s: dict[str, float]  # wall time per simulator over the run
    parts: Parts


def run_scenario(
    scenario: Scenario, out_dir: str | Path, progress: bool = True, chain: Chain | None = None
) -> RunOutcome:
    """Run a scenario through mosaik; tables are written slot by slot into `out_dir`."""
    start = time.perf_counter()
    parts = build_parts(scenario, chain)
    writer = ResultsWriter(Path(out_dir), parts.scenario)
    timings: dict[str, dict[str, float]] = {}
    world = build_world(parts, writer, timings=timings)
    try:
        world.run(until=parts.schedule.end, print_progress=progress, shutdown=False)
    finally:
        world.shutdown()
    step_s = {model: sum(phases.values()) for model, phases in timings.items()}
    return RunOutcome(Path(out_dir), time.perf_counter() - start, parts.setup_s, step_s, parts)
