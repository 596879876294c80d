"""The market of a scenario without mosaik and without a chain.

The same agents make the same decisions as in the co-simulation (`DSOAgent.plan_bands` and
`decide`, `HomesAgent.respond` and `apply`), but the contract's work is done directly: the
bands, bounds and lambda are rounded to the contract's fixed-point units exactly as a round
trip through the chain rounds them, and a group's sum is the sum of its submitting homes'
integer watts (revealed when at least `aggregation.min_group_size` homes submitted, as the
contract reveals it after the survivors' recovery). The ground-truth grid runs the same power
flow as the grid simulator. So the tables equal those of `blockhems run` (tests/test_offline.py
compares), without the chain's time: it is the tool for trying market designs and for the
stress set's many days.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from grid_models.engine import power_flow_engine
from sim.chain.units import kw_to_w, lambda_as_posted, price_from_chain, price_to_chain
from sim.market.agents import DSOAgent, HomesAgent, RevealedBid
from sim.market.setup import (
    aggregation_groups,
    build_dso,
    build_fleet,
    day_prices,
    homes_agent,
)
from sim.results.tables import dso_rows, grid_rows, homes_rows
from sim.scenario import Scenario, build_scenario_feeder, resolve_scenario


def on_chain(band: tuple[float, float]) -> tuple[float, float]:
    """A price band ($/kWh) as the homes read it back from the contract (micro-$/kWh)."""
    return tuple(price_from_chain(price_to_chain(p)) for p in band)


@dataclass
class OfflineRun:
    """Tables of an offline run (the co-simulation's tables but `transactions`), by name."""

    scenario: Scenario
    tables: dict[str, pd.DataFrame]
    dso: DSOAgent
    homes: HomesAgent
    wall_s: dict[str, float] = field(default_factory=dict)


def run_offline(scenario: Scenario, grid_tables: bool = True) -> OfflineRun:
    """Run `scenario`'s market slot by slot (see the module docstring). With
    `grid_tables=False` the per-bus `voltages` and per-line `lines` tables are skipped (the
    slots table keeps the extremes and limit counts)."""
    wall: dict[str, float] = {}
    start = time.perf_counter()
    grid_feeder = build_scenario_feeder(scenario)
    dso_feeder = build_scenario_feeder(scenario)
    scenario = resolve_scenario(scenario, grid_feeder)
    power_flow = power_flow_engine(grid_feeder, scenario.feeder.engine)
    homes = _homes(scenario, grid_feeder)
    fleet, groups, t = homes.fleet, homes.groups, scenario.time
    dso, forecaster = build_dso(scenario, dso_feeder, groups, fleet.smart, fleet.weather.ghi_w_m2)
    prices = day_prices(scenario)
    spec = scenario.dso
    dso_agent = DSOAgent(
        dso, None, forecaster, prices[t.first_slot :], spec.mode, t.slot_s / 3600, spec.band_damping
    )
    wall["setup"] = time.perf_counter() - start

    rows: dict[str, list[dict]] = {}
    min_size = scenario.aggregation.min_group_size
    wall.update(dso=0.0, homes=0.0, grid=0.0)
    for round_ in range(t.n_slots):
        slot = round_ + t.first_slot
        start = time.perf_counter()
        bands = {g: on_chain(band) for g, band in dso_agent.plan_bands(round_, slot).items()}
        wall["dso"] += time.perf_counter() - start
        start = time.perf_counter()
        homes.respond(round_, bands)
        wall["homes"] += time.perf_counter() - start
        start = time.perf_counter()
        lam = dso_agent.decide(round_, slot, _aggregates(homes, min_size))
        wall["dso"] += time.perf_counter() - start
        start = time.perf_counter()
        homes.apply(round_, {group: lambda_as_posted(value) for group, value in lam.items()})
        wall["homes"] += time.perf_counter() - start
        start = time.perf_counter()
        result = power_flow(
            grid_feeder.site_totals(homes.import_kw),
            grid_feeder.site_totals(homes.q_kvar),
            slot=slot,
        )
        wall["grid"] += time.perf_counter() - start
        dso_agent.observe_substation(result.p_sub_kw, result.q_sub_kvar)  # its feeder meter
        parts = [dso_rows(dso_agent, round_, slot), homes_rows(homes, round_)]
        parts.append(grid_rows(grid_feeder, result, round_, scenario.dso.ampacity_factor))
        _record(rows, parts, {}, grid_tables)
    tables = {name: pd.DataFrame(table_rows) for name, table_rows in rows.items()}
    return OfflineRun(scenario, tables, dso_agent, homes, wall)


def _homes(scenario: Scenario, grid_feeder) -> HomesAgent:
    """The scenario's fleet, trained, as the co-simulation's homes agent without chain
    clients, warmed up to the first slot (`sim.market.setup.homes_agent`)."""
    fleet = build_fleet(scenario, grid_feeder.n_homes)
    fleet.train()
    groups = aggregation_groups(grid_feeder, fleet.smart, scenario.aggregation.min_group_size)
    return homes_agent(scenario, fleet, {}, groups)


def _record(rows: dict[str, list[dict]], parts: list[dict], slot_row: dict, grid_tables: bool):
    """Add one slot's table rows (`parts`, each a table -> rows dict) to `rows`: the slots
    table's pieces merged into `slot_row`, the per-bus and per-line tables only with
    `grid_tables`."""
    for part in parts:
        for table, table_rows in part.items():
            if table == "slots":
                for row in table_rows:
                    slot_row.update(row)
            elif grid_tables or table not in ("voltages", "lines"):
                rows.setdefault(table, []).extend(table_rows)
    rows.setdefault("slots", []).append(slot_row)


def _aggregates(homes: HomesAgent, min_group_size: int) -> dict[int, RevealedBid | None]:
    """What the contract reveals of each group: the sums of the submitting homes' integer
    watts at every point of their bids (Lmax first), or None when fewer than
    `min_group_size` submitted."""
    watts = np.array([kw_to_w(column) for column in homes.points_kw.T]).T  # (homes, K)
    var = np.array([kw_to_w(column) for column in homes.points_q_kvar.T]).T
    out: dict[int, RevealedBid | None] = {}
    for group, members in homes.groups.items():
        senders = [h for h in members if homes.submitted[h]]
        if len(senders) < min_group_size:
            out[group] = None
            continue
        points = tuple(int(v) for v in watts[senders].sum(axis=0))
        q = tuple(int(v) for v in var[senders].sum(axis=0))  # the ladder's lanes (group mode)
        out[group] = RevealedBid(points, len(senders), None if homes.mode == "paper" else q)
    return out


def run_own_plan(scenario: Scenario, grid_tables: bool = True) -> OfflineRun:
    """The same homes with no market: every HEMS home runs its own plan at the substation
    price (`HomesAgent.run_alone`, as the warm-up before the first market slot does), on the
    same ground-truth grid. The third run beside the market and the
    full-information oracle: market minus own plan is what the market costs the homes, own
    plan minus oracle what the homes' one-step policy and the lack of coordination leave."""
    wall: dict[str, float] = {}
    start = time.perf_counter()
    grid_feeder = build_scenario_feeder(scenario)
    scenario = resolve_scenario(scenario, grid_feeder)
    power_flow = power_flow_engine(grid_feeder, scenario.feeder.engine)
    homes = _homes(scenario, grid_feeder)
    t = scenario.time
    prices = np.asarray(day_prices(scenario))
    wall["setup"] = time.perf_counter() - start
    rows: dict[str, list[dict]] = {}
    wall.update(homes=0.0, grid=0.0)
    for round_ in range(t.n_slots):
        slot = round_ + t.first_slot
        start = time.perf_counter()
        price = float(prices[slot])
        homes.run_alone(slot, price)
        wall["homes"] += time.perf_counter() - start
        start = time.perf_counter()
        result = power_flow(
            grid_feeder.site_totals(homes.import_kw),
            grid_feeder.site_totals(homes.q_kvar),
            slot=slot,
        )
        wall["grid"] += time.perf_counter() - start
        parts = [homes_rows(homes, round_)]
        parts.append(grid_rows(grid_feeder, result, round_, scenario.dso.ampacity_factor))
        _record(rows, parts, {"round": round_, "energy_price_usd_per_kwh": price}, grid_tables)
    tables = {name: pd.DataFrame(table_rows) for name, table_rows in rows.items()}
    return OfflineRun(scenario, tables, None, homes, wall)
