"""Assemble and run one scenario: build the parts, connect them in mosaik, write results.

`build_parts` creates the plain objects (feeder for the grid, the DSO's own copy of the
feeder, the HEMS fleet, the chain with the contract and registered homes; the pieces come from
`sim.market.setup`); `build_world` wires them into a mosaik World; `run_scenario` does both,
runs, and returns a summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import mosaik

from sim.chain.connection import Chain
from sim.children import START_TIMEOUT_S, child_sim_config
from sim.hems import load_weather, smart_homes
from sim.market.agents import DSOAgent, HomesAgent
from sim.market.checkpoint import Checkpoints, restore_dso, restore_homes
from sim.market.setup import (
    aggregation_groups,
    build_dso,
    build_fleet,
    day_prices,
    fleet_config,
    homes_agent,
    open_chain,
    open_market,
)
from sim.protocol import Schedule
from sim.results.tables import dso_rows, grid_rows, homes_rows
from sim.results.writer import Format, ResultsWriter, finished_slots
from sim.scenario import (
    Scenario,
    ScenarioError,
    build_scenario_feeder,
    dump_scenario,
    resolve_scenario,
)

SIM_CONFIG: dict[str, dict[str, str]] = {
    name: {"python": f"sim.cosim.simulators:{name}"}
    for name in ("ChainSim", "DSOSim", "HomesSim", "GridSim", "RecorderSim")
}
# A shard of the HEMS fleet in its own OS process (mosaik starts it and talks over a socket).
SIM_CONFIG["HomesShard"] = {"cmd": "%(python)s -m sim.cosim.shard %(addr)s"}
SIM_CONFIG["GridProcess"] = {"cmd": "%(python)s -m sim.cosim.grid_process %(addr)s"}


def sim_config(log_level: str = "warning") -> dict[str, dict[str, str]]:
    """`SIM_CONFIG` with the simulator processes' own loguru level (mosaik_api_v3's
    ``--log-level``; at "info" each announces its connection to mosaik)."""
    return {
        name: {"cmd": f"{entry['cmd']} --log-level {log_level}"} if "cmd" in entry else entry
        for name, entry in SIM_CONFIG.items()
    }


@dataclass(frozen=True)
class Flow:
    """One mosaik connection of the world, by model name (for audits and tests)."""

    src: str
    dest: str
    attrs: tuple[str, ...]


@dataclass
class Parts:
    """The plain objects of a run. With `homes.shards` > 1 the fleet lives in the shard
    processes: `homes_agent` is None and `shards` holds each shard's start parameters."""

    scenario: Scenario
    schedule: Schedule
    grid_feeder: object
    dso_agent: DSOAgent
    homes_agent: HomesAgent | None
    chain: Chain
    t0: int
    setup_s: dict[str, float] = field(default_factory=dict)
    shards: list[dict] = field(default_factory=list)
    node: object | None = None  # a node process the run started (stopped by run_scenario)


def shard_homes(groups: dict[int, list[int]], n_homes: int, n_shards: int) -> list[list[int]]:
    """Fleet indices per shard: whole aggregation groups, largest first to the shard with the
    fewest HEMS homes so far; ordinary homes (no chain work) go with shard 0."""
    if n_shards > len(groups):
        raise ScenarioError(
            f"homes.shards = {n_shards} exceeds the {len(groups)} aggregation groups (a shard "
            "holds whole groups): lower homes.shards",
            key="homes.shards",
        )
    shards: list[list[int]] = [[] for _ in range(n_shards)]
    for group in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        min(shards, key=len).extend(groups[group])
    in_groups = {h for members in groups.values() for h in members}
    shards[0].extend(h for h in range(n_homes) if h not in in_groups)
    return [sorted(s) for s in shards]


def build_parts(scenario: Scenario, chain: Chain | None = None) -> Parts:
    """Everything a run needs, before mosaik starts (timed per component)."""
    setup_s: dict[str, float] = {}
    start = time.perf_counter()
    grid_feeder = build_scenario_feeder(scenario)
    dso_feeder = build_scenario_feeder(scenario)  # the DSO's own model of the network
    scenario = resolve_scenario(scenario, grid_feeder)
    setup_s["grid"] = time.perf_counter() - start

    n_homes, sharded = grid_feeder.n_homes, scenario.homes.shards > 1
    start = time.perf_counter()
    if sharded:  # the shard processes build and train the fleet
        config = fleet_config(scenario, n_homes)
        fleet, smart = None, smart_homes(config)
        weather = load_weather(config.weather_file, config.start_day, config.n_days, config.slot_s)
        ghi_w_m2 = weather.ghi_w_m2
    else:
        fleet = build_fleet(scenario, n_homes)
        fleet.train()
        smart, ghi_w_m2 = fleet.smart, fleet.weather.ghi_w_m2
    setup_s["hems_training"] = time.perf_counter() - start

    t = scenario.time
    groups = aggregation_groups(grid_feeder, smart, scenario.aggregation.min_group_size)
    shards = shard_homes(groups, n_homes, scenario.homes.shards) if sharded else []
    start = time.perf_counter()
    spec = scenario.dso
    dso, forecaster = build_dso(scenario, dso_feeder, groups, smart, ghi_w_m2)
    setup_s["dso"] = time.perf_counter() - start

    start = time.perf_counter()
    node = None
    if chain is None:
        chain, node = open_chain(scenario)
    try:
        market, clients = open_market(scenario, chain, groups)
        t0 = chain.now() + 60
        setup_s["chain"] = time.perf_counter() - start

        schedule = Schedule(
            t.slot_s,
            t.n_slots,
            scenario.chain.block_time_s,
            scenario.chain.deadline_s,
            scenario.chain.recovery_s,
        )
        energy_price = day_prices(scenario)[t.first_slot :]
        dso_agent = DSOAgent(
            dso, market.dso, forecaster, energy_price, spec.mode, t.slot_s / 3600, spec.band_damping
        )
        agent = None if sharded else homes_agent(scenario, fleet, clients, groups)
    except BaseException:
        if node is not None:
            node.stop()
        raise
    shard_params = [
        {
            "scenario_yaml": dump_scenario(scenario),
            "n_homes": n_homes,
            "home_ids": homes,
            "groups": [[g, members] for g, members in groups.items()],  # JSON keys are strings
            "url": chain.w3.provider.endpoint_uri,
            "contract": market.contract.address,
            "registrar": market.registrar,
            # the shard's own homes' secrets only (mosaik's socket to a local child process);
            # nothing of them goes to the results folder or the log
            "home_keys": [[h, clients[h].keys.export()] for h in homes if h in clients],
            "lead": k == 0,
            "name": f"Homes shard {k}",
        }
        for k, homes in enumerate(shards)
    ]
    parts = Parts(scenario, schedule, grid_feeder, dso_agent, agent, chain, t0, setup_s)
    parts.shards, parts.node = shard_params, node
    return parts


def resume_parts(parts: Parts, checkpoints: Checkpoints, first_round: int) -> None:
    """Put freshly built `parts` where the checkpoints of round `first_round` say: the homes'
    and the DSO's states, and a schedule from that round on (the shard processes restore
    their homes themselves)."""
    if parts.homes_agent is not None:
        restore_homes(parts.homes_agent, checkpoints.load("homes", first_round))
    restore_dso(parts.dso_agent, checkpoints.load("dso", first_round))
    parts.schedule = replace(parts.schedule, first_round=first_round)


def build_world(
    parts: Parts,
    writer: ResultsWriter,
    timings: dict | None = None,
    on_slot: Callable[[dict], None] | None = None,
    log_level: str = "warning",
    checkpoints: Checkpoints | None = None,
) -> mosaik.World:
    """The mosaik world of a run: chain, DSO, homes (or one simulator process per shard),
    grid (in process or its own) and recorder, and their data flows. `on_slot` gets each
    finished slot's row of the slots table; `log_level` is the simulator processes';
    `checkpoints`, if given, get the DSO's and the homes' state every slot."""
    world = mosaik.World(
        child_sim_config(sim_config(log_level)),
        mosaik_config={"start_timeout": START_TIMEOUT_S},
        skip_greetings=True,
    )
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
        checkpoints=checkpoints,
    ).DSO()
    if parts.homes_agent is not None:
        homes_shards = [
            world.start(
                "HomesSim",
                schedule=schedule,
                timings=timings,
                agent=parts.homes_agent,
                home_ids=list(range(parts.homes_agent.fleet.n_homes)),
                table_rows=homes_rows,
                checkpoints=checkpoints,
            ).Homes()
        ]
    else:  # one process per shard; mosaik passes the parameters over its socket as JSON
        homes_shards = [
            world.start("HomesShard", schedule=asdict(schedule), **params).Homes()
            for params in parts.shards
        ]
    if parts.scenario.feeder.own_process:
        grid = world.start(
            "GridProcess",
            schedule=asdict(schedule),
            scenario_yaml=dump_scenario(parts.scenario),
            slot_offset=t.first_slot,
        ).Grid()
    else:
        grid = world.start(
            "GridSim",
            schedule=schedule,
            timings=timings,
            feeder=parts.grid_feeder,
            slot_offset=t.first_slot,
            table_rows=partial(grid_rows, rating_factor=parts.scenario.dso.ampacity_factor),
            engine=parts.scenario.feeder.engine,
        ).Grid()
    recorder = world.start(
        "RecorderSim", schedule=schedule, writer=writer, on_slot=on_slot
    ).Recorder()

    flows: list[Flow] = []

    def connect(src, dest, *attrs: str, **options) -> None:
        world.connect(src, dest, *attrs, **options)
        flows.append(Flow(src.type, dest.type, attrs))

    connect(chain, dso, "clock")
    for homes in homes_shards:
        connect(chain, homes, "clock")
    for actor in (dso, *homes_shards):
        # not None: mosaik ignores an initial value of None (see sim.cosim.simulators)
        connect(actor, chain, "done", time_shifted=True, initial_data={"done": -1})
    for homes in homes_shards:
        connect(homes, grid, "p_kw", "q_kvar")
    # the DSO's substation meter: the feeder's total of the slot just run, before its next prices
    connect(grid, dso, "substation", time_shifted=True, initial_data={"substation": {}})
    for source in (chain, dso, *homes_shards, grid):
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


def _cancel_pending(world: mosaik.World) -> None:
    """Cancel and await the tasks an interrupted `world.run` left on its loop (the simulators'
    runners), so that none is garbage-collected pending ("Task was destroyed but it is
    pending!"). The tasks that serve the simulator processes' sockets (each proxy's request
    reader and its channel's receiver) stay: `world.shutdown` stops those processes through
    them."""
    loop = world.loop
    keep = set()
    for proxy in world._async_world._proxies.values():
        keep.add(getattr(proxy, "_reader_task", None))
        keep.add(getattr(getattr(proxy, "_channel", None), "_receiver_task", None))
    pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t not in keep]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_scenario(
    scenario: Scenario,
    out_dir: str | Path,
    progress: Callable[[Scenario], Callable[[dict], None]] | bool | None = None,
    chain: Chain | None = None,
    fmt: Format | None = None,
    log_level: str = "warning",
    resume: bool = False,
) -> RunOutcome:
    """Run a scenario through mosaik; tables are written slot by slot into `out_dir` (as
    `fmt`, default the scenario's `outputs.format`), with a checkpoint of the homes' and the
    DSO's state every slot (`sim.market.checkpoint`, removed when the run finishes).
    `resume`: continue the interrupted run in `out_dir` from its last checkpoint (`scenario`
    is the one in its scenario.yaml). `progress`, if callable, is called with the resolved
    scenario and the first round once set-up is done and returns the hook that gets each
    finished slot's row of the slots table (False or None: no hook); `log_level` is that of
    the simulator processes (the main process's loguru is the caller's to set)."""
    if progress is True:  # mosaik's own bar (simulated seconds) is gone
        raise TypeError("run_scenario(progress=...) takes a hook factory (see sim.console)")
    start = time.perf_counter()
    checkpoints = Checkpoints(out_dir)
    first_round = None
    if resume:  # before the heavy set-up: a folder that cannot be resumed fails at once
        first_round = checkpoints.resume_round(finished_slots(out_dir), scenario.time.n_slots)
    else:
        checkpoints.clear()  # an earlier run's in the same folder
    parts = build_parts(scenario, chain)
    try:
        if first_round is not None:
            resume_parts(parts, checkpoints, first_round)
        on_slot = progress(parts.scenario, first_round or 0) if callable(progress) else None
        writer = ResultsWriter(Path(out_dir), parts.scenario, fmt, resume_round=first_round)
        for params in parts.shards:
            params.update(checkpoint_dir=str(out_dir), resume_round=first_round or 0)
        timings: dict[str, dict[str, float]] = {}
        begun = time.perf_counter()
        world = build_world(
            parts,
            writer,
            timings=timings,
            on_slot=on_slot,
            log_level=log_level,
            checkpoints=checkpoints,
        )
        parts.setup_s["mosaik_start"] = time.perf_counter() - begun  # incl. shard processes
        try:
            world.run(
                until=parts.schedule.end,
                print_progress=False,  # the console draws its own bar over slots
                shutdown=False,
                # let simulators run ahead of slower successors (the recorder waits for the grid)
                lazy_stepping=False,
            )
        except BaseException:
            _cancel_pending(world)
            raise
        finally:
            try:
                world.shutdown()
            finally:
                writer.close()  # finished slots of an interrupted run are consolidated too
    finally:
        if parts.node is not None:
            parts.node.stop()
    if len(finished_slots(out_dir)) == parts.schedule.n_slots:
        checkpoints.clear()  # a finished run needs none
    step_s = {model: sum(phases.values()) for model, phases in timings.items()}
    step_s.update(writer.step_s)  # what the shard processes measured
    return RunOutcome(Path(out_dir), time.perf_counter() - start, parts.setup_s, step_s, parts)
