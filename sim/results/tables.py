"""Rows of the results tables (see sim.results.writer) from the state of each component."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from grid_models import PHASES, Feeder, PowerFlowResult
from sim.results.limits import LOADING_TOL_PCT

if TYPE_CHECKING:  # the grid's own process needs grid_rows only, not the chain and DSO stack
    from sim.market.agents import DSOAgent, HomesAgent


def dso_rows(agent: DSOAgent, round_: int, slot: int) -> dict[str, list[dict]]:
    s1, s2 = agent.stage1, agent.stage2
    feeder = agent.dso.feeder
    groups = []
    for g, group in enumerate(agent.group_ids):
        aggregate = agent.aggregates.get(group)
        groups.append(
            {
                "round": round_,
                "group": group,
                "p_low_usd_per_kwh": float(agent.posted_bands[g, 0]),
                "p_high_usd_per_kwh": float(agent.posted_bands[g, 1]),
                "revealed": aggregate is not None,
                "implausible": group in agent.implausible,
                "members": int(agent.forecaster.group_sizes[g]),
                "contributors": 0 if aggregate is None else aggregate.contributors,
                "lmin_kw": float(agent.group_lmin_kw[g]),
                "lmax_kw": float(agent.group_lmax_kw[g]),
                "lambda_group": float(s2.lam_group[g]),
            }
        )
    sites = feeder.sites
    dlmp = [
        {
            "round": round_,
            "site": int(i),
            "bus": int(sites.bus.iloc[i]),
            "phase": sites.phase.iloc[i],
            "dlmp_usd_per_kwh": float(s1.dlmp[i]),
            "energy_usd_per_kwh": float(s1.energy[i]),
            "loss_usd_per_kwh": float(s1.loss[i]),
            "congestion_usd_per_kwh": float(s1.congestion[i]),
            "voltage_usd_per_kwh": float(s1.voltage[i]),
        }
        for i in range(len(sites))
    ]
    slot_row = {
        "round": round_,
        "hour": slot * agent.slot_h,
        "energy_price_usd_per_kwh": float(agent.energy_price[round_]),
        "lambda": float(s2.lam),
        "dso_iterations": int(s2.iterations),
        "dso_infeasible": bool(s2.infeasible),
        "dso_ac_ok": bool(s2.ac_ok),
        "dso_stage1_fallback": bool(agent.stage1_fallback),
        "groups_revealed": sum(a is not None for a in agent.aggregates.values()),
        # what the DSO's own AC check expected of its dispatch (its model of the feeder)
        "dso_max_line_loading_pct": float(np.nanmax(s2.line_loading_pct)),
    }
    lv = np.isin(s2.bus, agent.dso.model.lv_buses)
    for k, ph in enumerate(PHASES):
        slot_row[f"dso_v_min_{ph}_pu"] = float(np.nanmin(s2.vm_pu[lv, k]))
        slot_row[f"dso_v_max_{ph}_pu"] = float(np.nanmax(s2.vm_pu[lv, k]))
    return {"groups": groups, "dlmp": dlmp, "slots": [slot_row]}


APPLIANCE_COLUMNS = ("battery_kw", "hvac_kw", "wh_kw", "soc_kwh", "t_in_c", "tank_c")


def homes_rows(
    agent: HomesAgent, round_: int, home_ids: list[int] | None = None, summary: bool = True
) -> dict[str, list[dict]]:
    """Per-home rows of `home_ids` (default: every home) and, with `summary`, the fleet's
    columns of the slot row (a shard holds the whole fleet's model, so one shard gives them)."""
    fleet = agent.fleet
    slot = round_ + agent.slot_offset
    violation = fleet.records["comfort_violation_c"][:, slot]
    pv_curtailed = fleet.records["pv_curtailed_kw"][:, slot]
    shed = fleet.records["shed_kw"][:, slot]
    # appliance powers and the states at the end of the slot (NaN for ordinary homes), so a
    # run's whole cost (degradation, SOC left at the end) can be priced from its tables
    appliances = {name: fleet.records[name][:, slot] for name in APPLIANCE_COLUMNS}
    rows = [
        {
            "round": round_,
            "home": int(i),
            "group": agent.group_of.get(i, -1),
            "smart": bool(fleet.smart[i]),
            "submitted": bool(agent.submitted[i]),
            "p_low_usd_per_kwh": float(agent.p_low[i]),
            "p_high_usd_per_kwh": float(agent.p_high[i]),
            "lmin_kw": float(agent.lmin_kw[i]),
            "lmax_kw": float(agent.lmax_kw[i]),
            "low_price_kw": float(agent.low_price_kw[i]),
            "cap_kw": float(agent.cap_kw[i]) if np.isfinite(agent.cap_kw[i]) else None,
            "import_kw": float(agent.import_kw[i]),
            "q_kvar": float(agent.q_kvar[i]),
            "comfort_violation_c": float(violation[i]),
            "pv_curtailed_kw": float(np.nan_to_num(pv_curtailed[i])),
            "shed_kw": float(np.nan_to_num(shed[i])),
            **{name: float(values[i]) for name, values in appliances.items()},
        }
        for i in (range(fleet.n_homes) if home_ids is None else home_ids)
    ]
    if not summary:
        return {"homes": rows}
    smart = fleet.smart
    totals = {
        "round": round_,
        "import_kw": float(agent.import_kw.sum()),
        "hems_lmin_kw": float(agent.lmin_kw[smart].sum()),
        "hems_lmax_kw": float(agent.lmax_kw[smart].sum()),
        "hems_cap_kw": float(agent.cap_kw[smart].sum()),
        "hems_import_kw": float(agent.import_kw[smart].sum()),
        "homes_submitted": int(agent.submitted.sum()),
        "comfort_violations": int((violation > 1e-6).sum()),
        "pv_curtailed_kw": float(np.nansum(pv_curtailed)),
        "shed_kw": float(np.nansum(shed)),
    }
    return {"homes": rows, "slots": [totals]}


def grid_rows(
    feeder: Feeder, result: PowerFlowResult, round_: int, rating_factor: float = 1.0
) -> dict[str, list[dict]]:
    """The ground truth's rows; loading is against the lines' and the transformer's ratings
    (pandapower's), and `lines_over_limit` counts line-phases above `rating_factor` times the
    rating (the scenario's `dso.ampacity_factor`: the ratings the study holds the market to)."""
    vm = result.vm_pu
    voltages = [
        {"round": round_, "bus": int(b), "phase": ph, "vm_pu": float(vm[i, k])}
        for i, b in enumerate(result.bus)
        for k, ph in enumerate(PHASES)
        if np.isfinite(vm[i, k])
    ]
    lines = [
        {
            "round": round_,
            "line": int(line),
            "phase": ph,
            "i_a": float(result.line_i_a[i, k]),
            "loading_pct": float(result.line_loading_pct[i, k]),
        }
        for i, line in enumerate(result.line)
        for k, ph in enumerate(PHASES)
    ]
    # The envelope covers the feeder below the transformer, not its upstream source bus.
    bus_kv = feeder.net.bus.vn_kv
    lv = bus_kv.loc[result.bus].to_numpy() <= bus_kv.loc[feeder.lv_bus] + 1e-9
    row = {
        "round": round_,
        "losses_kw": float(result.losses_kw),
        "max_line_loading_pct": float(np.nanmax(result.line_loading_pct)),
        "lines_over_limit": int(
            (np.nan_to_num(result.line_loading_pct) > 100.0 * rating_factor + LOADING_TOL_PCT).sum()
        ),
        "max_trafo_loading_pct": float(np.nanmax(result.trafo_loading_pct)),
    }
    for k, ph in enumerate(PHASES):
        row[f"p_sub_{ph}_kw"] = float(result.p_sub_kw[k])
        row[f"v_min_{ph}_pu"] = float(np.nanmin(vm[lv, k]))
        row[f"v_max_{ph}_pu"] = float(np.nanmax(vm[lv, k]))
    return {"voltages": voltages, "lines": lines, "slots": [row]}
