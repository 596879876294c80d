"""The oracle's results folder and its comparison with a market run.

`write_oracle` writes, like a market run's folder: `scenario.yaml` (resolved), the `slots` table
(the co-simulation's ground-truth columns per round, the fleet totals of the oracle's dispatch
and, per slot, `oracle_kept_limits`, the linear slacks and the AC excess), the `homes` table (per
round and home: import, appliances, states), `costs.csv` (per home: energy, degradation,
terminal value, comfort) and `summary.json`.

`run_figures` computes the figures of any results folder's tables, market or oracle, the same
way: every limit (`sim.results.limits.limit_summary` on the slots table), the energy cost per
home (import x the scenario's energy price x slot hours, summed over the run; an export is
credited at the same price, net metering), comfort violations (home-slots above 1e-6 degC, and
the worst), PV curtailed (kWh) and the peak of the homes' total import (kW). `compare` puts
two folders side by side and judges every slot: a slot the market broke is `physically
infeasible` when the oracle broke it too and its program could not keep it (the oracle's
excursion is then the bound on what any dispatch of these homes could do), `undecided (oracle
not converged)` when the oracle broke it in the AC flow only, else `market broke, oracle
kept`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.oracle.homes import COMFORT_WEIGHT_USD_PER_C, schedule_cost_usd
from sim.oracle.oracle import OracleError, OracleRun, homes_table, slots_table
from sim.results.limits import limit_summary, slot_limits_broken, verdict
from sim.results.writer import ResultsWriter, load_results

EXPORT_VALUATION = (
    "net metering: net import x energy price x slot hours; an export is credited at the same price"
)
COMFORT_TOL_C = 1e-6
# scenario keys that must agree for two runs to be the same homes, weather, loads and limits
SAME_RUN_KEYS = ("feeder", "homes", "time", "dso")
IGNORED_KEYS = {"homes": ("shards",), "dso": ("ac_engine", "v_margin_pu", "i_margin_pct", "mode")}


def write_oracle(run: OracleRun, out_dir: str | Path) -> dict:
    """Write the oracle's folder (see the module docstring); returns the summary."""
    out_dir = Path(out_dir)
    writer = ResultsWriter(out_dir, run.scenario)
    slots = slots_table(run)
    writer.append("slots", slots)
    writer.append("homes", homes_table(run))
    writer.close()
    d = run.data
    costs = schedule_cost_usd(d, run.best.dispatch)
    table = pd.DataFrame({"home": np.arange(d.n_homes), "smart": False})
    table["energy_usd"] = costs["energy_all_usd"]
    for name in ("degradation_usd", "terminal_usd", "comfort_usd"):
        table[name] = 0.0
        table.loc[d.smart_idx, name] = costs[name]
    table.loc[d.smart_idx, "smart"] = True
    # how the homes' other costs are priced, so a market run's tables are priced the same way
    table["soc0_kwh"] = np.nan
    table.loc[d.smart_idx, "soc0_kwh"] = d.soc0_kwh
    table["terminal_usd_per_kwh"] = 0.0
    table.loc[d.smart_idx, "terminal_usd_per_kwh"] = d.terminal_usd_per_kwh
    table["degradation_usd_per_kwh"] = 0.0
    table.loc[d.smart_idx, "degradation_usd_per_kwh"] = d.degradation_usd_per_kwh
    table.to_csv(out_dir / "costs.csv", index=False)
    summary = run_figures(load_results(out_dir), *_study(run.scenario))
    summary.update(
        {
            "kind": "oracle",
            "slots_oracle_kept_limits": int(slots.oracle_kept_limits.sum()),
            "slots_oracle_linear_infeasible": int((~slots.oracle_linear_feasible).sum()),
            "battery_degradation_usd": float(costs["degradation_usd"].sum()),
            "terminal_soc_value_usd": float(costs["terminal_usd"].sum()),
            "comfort_penalty_usd": float(costs["comfort_usd"].sum()),
            "objective_usd": float(costs["objective_usd"].sum()),
            "passes": run.passes,
            "wall_s": {k: round(v, 2) for k, v in run.wall_s.items()},
        }
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _study(scenario) -> tuple[tuple[float, float], float, float]:
    spec = scenario.dso
    return (spec.v_min_pu, spec.v_max_pu), scenario.time.slot_s / 3600, spec.ampacity_factor


def run_figures(
    tables: dict[str, pd.DataFrame], v_band: tuple[float, float], slot_h: float,
    rating_factor: float = 1.0,
) -> dict:  # fmt: skip
    """The comparable figures of a results folder's tables (see the module docstring)."""
    slots, homes = tables["slots"], tables["homes"]
    if slots.empty or homes.empty:
        raise OracleError("results folder has no slots or homes rows")
    out = limit_summary(slots, v_band, slot_h, rating_factor)
    out["verdict"] = verdict(out)
    out["slots"] = int(len(slots))
    cost = home_energy_cost(tables, slot_h)
    out["energy_cost_usd"] = float(cost.sum())
    out["energy_cost_per_home_usd"] = {str(h): float(v) for h, v in cost.items()}
    smart = homes.smart.astype(bool)
    out["energy_cost_hems_usd"] = float(cost[homes[smart].home.unique()].sum())
    out["export_valuation"] = EXPORT_VALUATION
    viol = homes.comfort_violation_c.fillna(0)
    out["comfort_violations"] = int((viol > COMFORT_TOL_C).sum())
    out["worst_comfort_violation_c"] = float(viol.max())
    out["peak_import_kw"] = float(slots.import_kw.max())
    out["import_kwh"] = float(slots.import_kw.sum() * slot_h)
    return out


def home_energy_cost(tables: dict[str, pd.DataFrame], slot_h: float) -> pd.Series:
    """Energy cost ($) per home over the run: its import (kW, homes.csv) x the slot's energy
    price ($/kWh, slots.csv) x slot hours, summed."""
    price = tables["slots"].set_index("round").energy_price_usd_per_kwh
    homes = tables["homes"]
    usd = homes.import_kw * homes["round"].map(price) * slot_h
    return usd.groupby(homes.home).sum()


PRICING_COLUMNS = ("soc0_kwh", "terminal_usd_per_kwh", "degradation_usd_per_kwh")
COST_PARTS = ("energy_usd", "degradation_usd", "terminal_usd", "comfort_usd")
# the names of the whole cost's parts among a run's figures (as in the oracle's summary.json)
FIGURE_OF_PART = {
    "degradation_usd": "battery_degradation_usd",
    "terminal_usd": "terminal_soc_value_usd",
    "comfort_usd": "comfort_penalty_usd",
    "objective_usd": "objective_usd",
}


def home_costs(
    tables: dict[str, pd.DataFrame], slot_h: float, pricing: pd.DataFrame
) -> pd.DataFrame:
    """Each home's whole cost over the run ($), as the oracle minimizes it, from a results
    folder's tables: energy (`home_energy_cost`), battery degradation (its rate x |battery_kw|
    x slot hours), the SOC left below its start at the end (x the terminal value) and the
    comfort penalty (`COMFORT_WEIGHT_USD_PER_C` per degC outside a band per slot), and
    `objective_usd`, their sum. `pricing` (per home, the oracle's `costs.csv`) gives the start
    SOC (kWh), the terminal value and the degradation rate ($/kWh)."""
    homes = tables["homes"]
    missing = [c for c in ("battery_kw", "soc_kwh") if c not in homes]
    if missing:
        raise OracleError(
            f"the homes table has no {', '.join(missing)}: the run predates these columns; "
            "run it again"
        )
    price = pricing.set_index("home")
    out = pd.DataFrame({"energy_usd": home_energy_cost(tables, slot_h)})
    homes = homes.sort_values("round")
    by_home = homes.groupby("home")  # sums skip an ordinary home's NaN
    throughput = homes.battery_kw.abs().groupby(homes.home).sum() * slot_h
    out["degradation_usd"] = throughput * price.degradation_usd_per_kwh.reindex(out.index)
    end_soc = by_home.soc_kwh.last()  # the last finished slot's (NaN: an ordinary home)
    short = np.maximum(price.soc0_kwh.reindex(out.index) - end_soc, 0.0).fillna(0.0)
    out["terminal_usd"] = short * price.terminal_usd_per_kwh.reindex(out.index)
    out["comfort_usd"] = COMFORT_WEIGHT_USD_PER_C * by_home.comfort_violation_c.sum()
    out = out.fillna(0.0)
    out["objective_usd"] = out[list(COST_PARTS)].sum(axis=1)
    out.index.name = "home"
    return out


def _slot_excess(slots: pd.DataFrame, v_band: tuple[float, float]) -> pd.Series:
    low = slots[[f"v_min_{ph}_pu" for ph in "abc"]].min(axis=1)
    high = slots[[f"v_max_{ph}_pu" for ph in "abc"]].max(axis=1)
    return np.maximum(np.maximum(v_band[0] - low, high - v_band[1]), 0.0)


def slot_comparison(
    market: pd.DataFrame, oracle: pd.DataFrame, v_band: tuple[float, float],
    rating_factor: float = 1.0,
) -> pd.DataFrame:  # fmt: skip
    """Per round: whether each run broke a limit, its worst voltage excursion (pu beyond the
    band) and highest loading, and the judgement of the market's slot."""
    rounds = sorted(set(market["round"]) & set(oracle["round"]))
    m = market.set_index("round").loc[rounds].reset_index()
    o = oracle.set_index("round").loc[rounds].reset_index()
    mb = slot_limits_broken(m, v_band, rating_factor).broken.to_numpy()
    ob = slot_limits_broken(o, v_band, rating_factor).broken.to_numpy()
    out = pd.DataFrame({"round": rounds, "hour": m.hour.to_numpy()})
    out["market_broken"] = mb
    out["market_excess_v_pu"] = _slot_excess(m, v_band).to_numpy()
    out["market_max_line_loading_pct"] = m.max_line_loading_pct.to_numpy()
    out["oracle_broken"] = ob
    out["oracle_excess_v_pu"] = _slot_excess(o, v_band).to_numpy()
    out["oracle_max_line_loading_pct"] = o.max_line_loading_pct.to_numpy()
    # the oracle proves a slot infeasible only where its own program could not keep it; a slot
    # it broke in the AC flow after keeping it in the linear model is undecided (not converged)
    if "oracle_linear_feasible" in o:
        proven = ~o.oracle_linear_feasible.astype(bool).to_numpy()
    else:
        proven = np.ones(len(o), dtype=bool)
    both = np.where(proven, "physically infeasible", "undecided (oracle not converged)")
    out["judgement"] = np.where(
        ~mb,
        np.where(ob, "market kept, oracle broke", "kept"),
        np.where(ob, both, "market broke, oracle kept"),
    )
    return out


ROWS = (
    ("voltage_violations", "slot-phases outside the voltage band", "{:d}"),
    ("worst_undervoltage_pu", "worst undervoltage (pu below the band)", "{:.4f}"),
    ("worst_overvoltage_pu", "worst overvoltage (pu above the band)", "{:.4f}"),
    ("slots_with_line_overload", "slots with a line-phase above rating", "{:d}"),
    ("max_line_loading_pct", "max line loading (%)", "{:.1f}"),
    ("slots_with_trafo_overload", "slots with the transformer above rating", "{:d}"),
    ("max_trafo_loading_pct", "max transformer loading (%)", "{:.1f}"),
    ("slots_with_any_limit_broken", "slots with any limit broken", "{:d}"),
    ("energy_not_served_kwh", "energy not served (kWh)", "{:.2f}"),
    ("energy_cost_usd", "energy cost, all homes ($)", "{:.2f}"),
    ("energy_cost_hems_usd", "energy cost, HEMS homes ($)", "{:.2f}"),
    ("battery_degradation_usd", "battery degradation, HEMS homes ($)", "{:.2f}"),
    ("terminal_soc_value_usd", "SOC left below its start, valued ($)", "{:.2f}"),
    (
        "comfort_penalty_usd",
        f"comfort penalty ($, {COMFORT_WEIGHT_USD_PER_C:,.0f} $ per degC-slot)",
        "{:.2f}",
    ),
    ("objective_usd", "whole cost of the HEMS homes: energy + the three above ($)", "{:.2f}"),
    ("comfort_violations", "comfort violations (home-slots)", "{:d}"),
    ("worst_comfort_violation_c", "worst comfort violation (degC)", "{:.3f}"),
    ("pv_curtailed_kwh", "PV curtailed (kWh)", "{:.2f}"),
    ("peak_import_kw", "peak import of all homes (kW)", "{:.1f}"),
    ("import_kwh", "net import of all homes (kWh)", "{:.1f}"),
)


def compare(market_dir: str | Path, oracle_dir: str | Path, out_dir: str | Path) -> dict:
    """Side by side (`compare.json`, `compare.md`, `compare_slots.csv`, `compare_homes.csv`
    in `out_dir`) of a market run's folder and the oracle's folder of the same scenario."""
    market_dir, oracle_dir, out_dir = Path(market_dir), Path(oracle_dir), Path(out_dir)
    ms, os_ = _scenario_data(market_dir), _scenario_data(oracle_dir)
    diff = [k for k in SAME_RUN_KEYS if _same_run_part(ms, k) != _same_run_part(os_, k)]
    if diff:
        raise OracleError(
            f"{market_dir} is not a run of the oracle's scenario: {', '.join(diff)} differ"
        )
    dso = os_["dso"]
    v_band = (float(dso["v_min_pu"]), float(dso["v_max_pu"]))
    slot_h = float(os_["time"]["slot_s"]) / 3600
    rating = float(dso.get("ampacity_factor", 1.0))
    mt, ot = load_results(market_dir), load_results(oracle_dir)
    if len(mt["slots"]) != len(ot["slots"]):
        raise OracleError(
            f"{market_dir} has {len(mt['slots'])} finished slots, the oracle {len(ot['slots'])}"
        )
    mf, of = run_figures(mt, v_band, slot_h, rating), run_figures(ot, v_band, slot_h, rating)
    slots = slot_comparison(mt["slots"], ot["slots"], v_band, rating)
    counts = slots.judgement.value_counts().to_dict()
    result = {
        "market_dir": str(market_dir),
        "oracle_dir": str(oracle_dir),
        "export_valuation": EXPORT_VALUATION,
        "market": mf,
        "oracle": of,
        "efficiency_gap_usd": mf["energy_cost_usd"] - of["energy_cost_usd"],
        "slot_judgements": {k: int(v) for k, v in counts.items()},
        "physically_infeasible_rounds": slots["round"][
            slots.judgement == "physically infeasible"
        ].tolist(),
    }
    pricing_file = oracle_dir / "costs.csv"
    pricing = pd.read_csv(pricing_file) if pricing_file.exists() else None
    if pricing is None or not set(PRICING_COLUMNS) <= set(pricing.columns):
        raise OracleError(
            f"{pricing_file} is missing or predates its pricing columns: run the oracle again"
        )
    whole = {name: home_costs(t, slot_h, pricing) for name, t in (("market", mt), ("oracle", ot))}
    for name, costs in whole.items():
        hems = costs.loc[pricing.home[pricing.smart.astype(bool)]]  # what the oracle controls
        result[name].update({key: float(hems[part].sum()) for part, key in FIGURE_OF_PART.items()})
    gap = result["market"]["objective_usd"] - result["oracle"]["objective_usd"]
    result["objective_gap_usd"] = gap
    # issue 13's figure: the gap as a share of the optimum's magnitude (a day whose optimum is
    # near 0 $, PV export against import, makes any gap a large share)
    optimum = abs(result["oracle"]["objective_usd"])
    result["objective_gap_pct"] = 100.0 * gap / optimum if optimum > 0 else float("nan")
    homes = pd.DataFrame(
        {
            "home": [int(h) for h in mf["energy_cost_per_home_usd"]],
            "market_energy_usd": list(mf["energy_cost_per_home_usd"].values()),
        }
    )
    homes["oracle_energy_usd"] = homes.home.astype(str).map(of["energy_cost_per_home_usd"])
    homes["market_minus_oracle_usd"] = homes.market_energy_usd - homes.oracle_energy_usd
    for name, costs in whole.items():
        homes[f"{name}_objective_usd"] = homes.home.map(costs.objective_usd)
    gap = homes.market_minus_oracle_usd
    result["per_home_gap_usd"] = {"mean": float(gap.mean()), "min": float(gap.min()),
                                  "max": float(gap.max())}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    slots.to_csv(out_dir / "compare_slots.csv", index=False)
    homes.to_csv(out_dir / "compare_homes.csv", index=False)
    (out_dir / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "compare.md").write_text(_markdown(result, slots))
    return result


def _scenario_data(folder: Path) -> dict:
    path = folder / "scenario.yaml"
    if not path.exists():
        raise OracleError(f"{folder} is not a blockhems results folder (no scenario.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def _same_run_part(data: dict, key: str) -> dict:
    part = dict(data.get(key) or {})
    for name in IGNORED_KEYS.get(key, ()):
        part.pop(name, None)
    if key == "feeder":
        part.pop("own_process", None)
    return part


def _markdown(result: dict, slots: pd.DataFrame) -> str:
    mf, of = result["market"], result["oracle"]
    lines = [
        f"# Market run against the full-information oracle ({mf['slots']} slots)",
        "",
        f"market: `{result['market_dir']}`; oracle: `{result['oracle_dir']}`. Energy cost: "
        f"{EXPORT_VALUATION}.",
        "",
        "| figure | market | oracle |",
        "|---|---:|---:|",
    ]
    for key, label, fmt in ROWS:
        lines.append(f"| {label} | {fmt.format(mf[key])} | {fmt.format(of[key])} |")
    lines += [
        "",
        f"Market: {mf['verdict']}.",
        f"Oracle: {of['verdict']}.",
        f"Energy cost of the market above the oracle's: {result['efficiency_gap_usd']:.2f} $ "
        f"(per home: mean {result['per_home_gap_usd']['mean']:.3f} $, from "
        f"{result['per_home_gap_usd']['min']:.3f} to {result['per_home_gap_usd']['max']:.3f} $; "
        "compare_homes.csv).",
    ]
    lines.append(
        f"Whole cost of the market above the oracle's: {result['objective_gap_usd']:.2f} $ "
        f"({result['objective_gap_pct']:.1f} % of the optimum's {abs(of['objective_usd']):.2f} $; "
        "per home: compare_homes.csv)."
    )
    lines += [
        "",
        "Slots: "
        + ", ".join(f"{v} {k}" for k, v in sorted(result["slot_judgements"].items()))
        + ".",
    ]
    broken = slots[slots.market_broken | slots.oracle_broken]
    if len(broken):
        lines += [
            "",
            "| round | hour | market excess (pu) | market line (%) | oracle excess (pu) | "
            "oracle line (%) | judgement |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in broken.itertuples():
            lines.append(
                f"| {r.round} | {r.hour:.2f} | {r.market_excess_v_pu:.4f} | "
                f"{r.market_max_line_loading_pct:.1f} | {r.oracle_excess_v_pu:.4f} | "
                f"{r.oracle_max_line_loading_pct:.1f} | {r.judgement} |"
            )
    return "\n".join(lines) + "\n"
