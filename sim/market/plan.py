"""Every check of a scenario's content that a run makes before its heavy set-up.

`blockhems validate` and `blockhems run` both call `plan_run`, so validate refuses what run
would refuse: the feeder and its zones, the homes' configuration (appliance ranges, days in the
weather year), the aggregation groups and the shards, without the fleet's profiles and
training, the DSO's model or the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.hems import smart_homes
from sim.market.setup import aggregation_groups, fleet_config
from sim.scenario import Scenario, ScenarioError, build_scenario_feeder, resolve_scenario


@dataclass(frozen=True)
class RunPlan:
    """What the cheap parts of a run's set-up found: the feeder, its HEMS groups, the slots."""

    scenario: Scenario  # resolved: the feeder's voltage band filled in
    feeder: Any  # grid_models.Feeder
    groups: dict[int, list[int]]
    n_slots: int


def plan_run(scenario: Scenario) -> RunPlan:
    """Every check of a scenario's content that a run makes, without its heavy parts (fleet
    profiles and training, the DSO's model, the chain): the feeder and its zones, the homes'
    configuration, the aggregation groups, the shards. `blockhems validate` and `run` both
    call it, so validate refuses what run would refuse."""
    fleet_config(scenario, scenario.homes.count or 1)  # the homes' ranges, before the feeder
    feeder = build_scenario_feeder(scenario)
    resolved = resolve_scenario(scenario, feeder)
    dso = resolved.dso
    if dso.v_min_pu >= dso.v_max_pu:
        key = "dso.v_min_pu" if scenario.dso.v_min_pu is not None else "dso.v_max_pu"
        raise ScenarioError(
            f"scenario {scenario.name}: {key}: band {dso.v_min_pu:.4f}-{dso.v_max_pu:.4f} pu "
            f"(with feeder {feeder.name}'s default) is empty",
            key=key,
        )
    if 2 * dso.v_margin_pu >= dso.v_max_pu - dso.v_min_pu:
        raise ScenarioError(
            f"scenario {scenario.name}: dso.v_margin_pu: {dso.v_margin_pu} on both sides leaves "
            f"nothing of the band {dso.v_min_pu:.4f}-{dso.v_max_pu:.4f} pu",
            key="dso.v_margin_pu",
        )
    config = fleet_config(resolved, feeder.n_homes)
    groups = aggregation_groups(feeder, smart_homes(config), scenario.aggregation.min_group_size)
    shards = scenario.homes.shards
    if shards > len(groups):
        raise ScenarioError(
            f"scenario {scenario.name}: homes.shards = {shards} exceeds the {len(groups)} "
            "aggregation groups (a shard holds whole groups): lower homes.shards",
            key="homes.shards",
        )
    return RunPlan(resolved, feeder, groups, scenario.time.n_slots)
