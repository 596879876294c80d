"""The market's plain objects built from a scenario, without mosaik.

Used by the co-simulation (`sim.cosim.world`, `sim.cosim.shard`) and the privacy experiment
(`sim.privacy.experiment`): the aggregation groups, the HEMS fleet, the DSO with its forecaster,
the chain and the deployed contract with every HEMS home registered, the homes' agent warmed up
to the first market slot.
"""

from __future__ import annotations

import numpy as np

from grid_models import Feeder
from sim.chain.connection import Chain, connect
from sim.chain.deployment import Market, setup_market
from sim.chain.keys import MarketKeys
from sim.chain.node import start_node
from sim.dso import DSO, DSOLimits
from sim.dso.forecast import DSOForecaster, load_research_profile_kw
from sim.hems import FleetConfig, HEMSConfigError, HEMSFleet
from sim.market.agents import HomesAgent
from sim.scenario import Scenario, ScenarioError


def aggregation_groups(
    feeder: Feeder, smart: np.ndarray, min_group_size: int
) -> dict[int, list[int]]:
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
                    "lower aggregation.min_group_size",
                    key="aggregation.min_group_size",
                )
            phase_groups[-1][1].extend(pending)
        groups.update(phase_groups)
    return groups


def fleet_config(scenario: Scenario, n_homes: int) -> FleetConfig:
    """The HEMS fleet's configuration of a scenario on a feeder with `n_homes` homes."""
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
        # the homes plan with the tariff they are on: the scenario's substation price by hour
        "price_forecast_usd_per_kwh": [scenario.dso.energy_price(h) for h in range(24)],
    }
    try:
        return FleetConfig.from_dict(data)
    except HEMSConfigError as exc:
        raise _homes_error(scenario, exc) from None


def _homes_error(scenario: Scenario, exc: HEMSConfigError) -> ScenarioError:
    return ScenarioError(f"scenario {scenario.name}: homes.{exc}", key=f"homes.{exc.param}")


def build_fleet(scenario: Scenario, n_homes: int) -> HEMSFleet:
    """The scenario's HEMS fleet (untrained); the same homes in every process that builds it."""
    config = fleet_config(scenario, n_homes)
    try:
        return HEMSFleet(config)
    except HEMSConfigError as exc:
        raise _homes_error(scenario, exc) from None


def day_prices(scenario: Scenario) -> list[float]:
    """Substation energy price ($/kWh) of every slot from midnight to the run's last slot."""
    t, spec = scenario.time, scenario.dso
    return [spec.energy_price(int(s * t.slot_s // 3600)) for s in range(t.first_slot + t.n_slots)]


def homes_agent(
    scenario: Scenario, fleet: HEMSFleet, clients: dict, groups: dict[int, list[int]]
) -> HomesAgent:
    """The agent of `clients` (all HEMS homes, or a shard's) in the aggregation `groups`,
    warmed up to the first slot."""
    t = scenario.time
    agent = HomesAgent(
        fleet,
        clients,
        groups,
        t.first_slot,
        scenario.chain.dropout_probability,
        scenario.homes.seed,
        scenario.dso.mode,
    )
    agent.warm_up(np.asarray(day_prices(scenario)[: t.first_slot]))
    return agent


def build_dso(
    scenario: Scenario,
    feeder: Feeder,
    groups: dict[int, list[int]],
    smart: np.ndarray,
    ghi_w_m2: np.ndarray,
) -> tuple[DSO, DSOForecaster]:
    """The DSO on its own copy of the feeder, with the scenario's limits, and its forecaster
    (public data only: the load-research profile, the group sizes and weights)."""
    spec, t = scenario.dso, scenario.time
    ratings = {}
    if spec.ampacity_factor != 1.0:
        ratings = (feeder.net.line.max_i_ka * 1000.0 * spec.ampacity_factor).to_dict()
    limits = DSOLimits(
        spec.v_min_pu,
        spec.v_max_pu,
        line_ampacity_a=ratings,
        v_margin_pu=spec.v_margin_pu,
        i_margin_pct=spec.i_margin_pct,
    )
    dso = DSO(feeder, limits=limits, groups=groups, ac_engine=spec.ac_engine)
    profile = load_research_profile_kw(t.day_of_year, t.days, t.slot_s, ghi_w_m2)
    sizes = [len(groups[int(g)]) for g in dso.group_ids]
    return dso, DSOForecaster(feeder, smart, dso.weights, sizes, profile)


def market_keys(scenario: Scenario, n_homes: int) -> MarketKeys:
    """The run's keys: fresh from the OS CSPRNG, or, only with the scenario's
    `chain.debug_deterministic_keys: true`, derived from "<name>/<homes.seed>" (debugging)."""
    if scenario.chain.debug_deterministic_keys:
        seed = f"{scenario.name}/{scenario.homes.seed}"
        return MarketKeys.debug_deterministic(seed, n_homes, enabled=True)
    return MarketKeys.random(n_homes)


def open_market(
    scenario: Scenario, chain: Chain, groups: dict[int, list[int]]
) -> tuple[Market, dict]:
    """Deploy the contract, register every HEMS home in its group; returns the market and
    each home's chain client by home id."""
    home_ids = sorted(h for members in groups.values() for h in members)
    group_of = {h: g for g, members in groups.items() for h in members}
    market = setup_market(
        chain,
        [group_of[h] for h in home_ids],
        min_group_size=scenario.aggregation.min_group_size,
        recovery_period_s=scenario.chain.recovery_s,
        keys=market_keys(scenario, len(home_ids)),
    )
    return market, dict(zip(home_ids, market.homes, strict=True))


def open_chain(scenario: Scenario) -> tuple[Chain, object | None]:
    """The scenario's chain, and the node process started for it (None if none was).

    hardhat starts a local hardhat node; revm with shards runs as a local revm node so that
    the shard processes reach the same chain; the processes then serialize their batches.
    """
    spec = scenario.chain
    shared = scenario.homes.shards > 1
    if spec.backend == "rpc":
        return connect("rpc", spec.url, spec.rpc_timeout_s, shared=shared), None
    if spec.backend == "hardhat" or (spec.backend == "revm" and shared):
        node = start_node(spec.backend)
        try:
            chain = connect("rpc", node.url, spec.rpc_timeout_s, shared=shared)
            chain.w3.provider.name = node.name  # type: ignore[attr-defined]
            return chain, node
        except BaseException:
            node.stop()
            raise
    return connect(spec.backend), None


def connect_without_node(scenario: Scenario) -> Chain:
    """The scenario's chain for a caller that keeps no node process of its own (the privacy
    experiment): embedded backends or a running node by url."""
    spec = scenario.chain
    if spec.backend == "hardhat":
        raise ScenarioError(
            f"scenario {scenario.name}: chain.backend hardhat needs a node started by "
            "`blockhems run`; here use revm, embedded, or rpc with the url of a running node",
            key="chain.backend",
        )
    return connect("rpc", spec.url) if spec.backend == "rpc" else connect(spec.backend)
