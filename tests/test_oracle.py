"""The full-information oracle on the quick scenario: its dispatch keeps each home's physics,
its AC flow keeps the limits where it says so, it costs no more than a feasible reference,
and the comparison with a market run says what the tables say."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from grid_models import run_power_flow
from sim.cli import main
from sim.hems.policy import COMFORT_PENALTY_USD_PER_C
from sim.market.setup import day_prices
from sim.offline import run_offline, run_own_plan
from sim.oracle import run_oracle
from sim.oracle.oracle import OracleError, prepare
from sim.oracle.report import compare, home_costs, write_oracle
from sim.results.writer import ResultsWriter, load_results
from sim.scenario import SCENARIOS_DIR, build_scenario_feeder, load_scenario, override

QUICK = SCENARIOS_DIR / "quick.yaml"
# a floor the homes' own plan breaks in most of the quick scenario's slots (its lowest voltage
# is about 0.983 pu): the oracle has to move load to keep it
TIGHT_V_MIN_PU = 0.988


@pytest.fixture(scope="module")
def quick():
    return load_scenario(QUICK)


@pytest.fixture(scope="module")
def tight(quick):
    return override(quick, {"dso.v_min_pu": TIGHT_V_MIN_PU}, "test")


@pytest.fixture(scope="module")
def tight_run(tight):
    return run_oracle(tight)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, quick):
    """A market run (offline, the co-simulation's tables) and the oracle's folder of quick."""
    root = tmp_path_factory.mktemp("oracle")
    market = run_offline(quick)
    writer = ResultsWriter(root / "market", market.scenario)
    for name, table in market.tables.items():
        writer.append(name, table)
    writer.close()
    run = run_oracle(quick)
    summary = write_oracle(run, root / "oracle")
    return root / "market", root / "oracle", run, summary, market


def _ac_of_homes(scenario, homes: pd.DataFrame):
    """Independent ground truth: a fresh feeder, each round's per-home import summed per site."""
    feeder = build_scenario_feeder(scenario)
    out = []
    for r, rows in homes.groupby("round"):
        rows = rows.sort_values("home")
        p = feeder.site_totals(rows.import_kw.to_numpy())
        q = feeder.site_totals(rows.q_kvar.to_numpy())
        out.append((int(r), run_power_flow(feeder, p, q, slot=int(r)), feeder))
    return out


def test_each_home_keeps_its_own_physics(tight_run) -> None:
    d, disp = tight_run.data, tight_run.best.dispatch
    p, dt = d.params, d.dt_h
    tol = 1e-6
    # powers within each appliance's limits; no battery export beyond the home's own load
    x = disp.battery_kw
    assert np.all(np.abs(x) <= p.bat_kw[:, None] + tol)
    assert np.all(-x <= np.maximum(d.load_kw - d.pv_kw, 0.0) + tol)
    assert np.all((disp.hvac_kw >= -tol) & (disp.hvac_kw <= p.hvac_kw[:, None] + tol))
    assert np.all((disp.wh_kw >= -tol) & (disp.wh_kw <= p.wh_kw[:, None] + tol))
    assert np.all((disp.curtail_kw >= -tol) & (disp.curtail_kw <= d.pv_kw + tol))
    # SOC by the battery equation without the model's clip stays inside [e_min, e_max]
    e = d.soc0_kwh.copy()
    for k in range(d.n_slots):
        xk = x[:, k]
        e = e + dt * (p.bat_eff * np.maximum(xk, 0) + np.minimum(xk, 0) / p.bat_eff)
        assert np.all(e >= p.e_min_kwh - tol) and np.all(e <= p.e_max_kwh + tol)
        assert np.allclose(e, disp.soc_kwh[:, k], atol=1e-6)
    # comfort: indoor and tank temperature inside each home's band (fleet tolerance)
    assert np.all(disp.t_in_c >= p.t_low_c[:, None] - tol)
    assert np.all(disp.t_in_c <= p.t_high_c[:, None] + tol)
    assert np.all(disp.tank_c >= p.tank_low_c[:, None] - tol)
    assert np.all(disp.tank_c <= p.tank_high_c[:, None] + tol)
    # the import is the home's balance; ordinary homes are not touched
    imp = d.load_kw - d.pv_kw + disp.curtail_kw + x + disp.hvac_kw + disp.wh_kw
    assert np.allclose(disp.import_kw[d.smart_idx], imp)
    ordinary = np.setdiff1d(np.arange(d.n_homes), d.smart_idx)
    assert np.allclose(disp.import_kw[ordinary], d.fixed_kw[ordinary])


def test_ac_flow_keeps_the_limits_where_the_oracle_says_so(tight, tight_run, tmp_path) -> None:
    # the homes' own plan (pass 0, no grid) breaks the tight floor: the check is not vacuous
    assert tight_run.passes[0]["slots_broken"] > 0
    write_oracle(tight_run, tmp_path)
    tables = load_results(tmp_path)
    kept = tables["slots"].set_index("round").oracle_kept_limits
    assert kept.sum() >= len(kept) - 1  # it can keep (nearly) every slot of this cut
    scenario = tight_run.scenario
    v_min, v_max = scenario.dso.v_min_pu, scenario.dso.v_max_pu
    for r, result, feeder in _ac_of_homes(tight, tables["homes"]):
        lv = feeder.net.bus.vn_kv.loc[result.bus].to_numpy() <= 0.4 + 1e-9
        vm = result.vm_pu[lv]
        ok = (
            vm.min() >= v_min - 1e-6
            and vm.max() <= v_max + 1e-6
            and np.nanmax(result.line_loading_pct) <= 100.0 + 1e-3
            and result.trafo_loading_pct.max() <= 100.0 + 1e-3
        )
        assert ok == bool(kept[r]), f"round {r}: AC ok {ok}, oracle says {kept[r]}"


def _reference_objective(scenario) -> tuple[float, bool]:
    """Every HEMS home on its own ADP plan at the energy price, no cap, from the same states:
    its cost by the oracle's objective (energy, degradation, SOC below start, comfort) and
    whether its AC flow keeps every limit."""
    scenario, data, grid = prepare(scenario)
    # the fleet again, warmed up the same way (prepare does not return it)
    from sim.market.setup import build_fleet

    fleet = build_fleet(scenario, data.n_homes)
    prices = np.asarray(day_prices(scenario))
    fleet.train()
    t = scenario.time
    for slot in range(t.first_slot):
        _, lmax = fleet.compute_ranges(slot, prices[slot], prices[slot])
        fleet.dispatch(slot, np.where(fleet.smart, lmax, np.inf))
    assert np.allclose(fleet.soc_kwh, data.soc0_kwh) and np.allclose(fleet.tank_c, data.tank0_c)
    span = slice(t.first_slot, t.first_slot + t.n_slots)
    for slot in range(span.start, span.stop):
        _, lmax = fleet.compute_ranges(slot, prices[slot], prices[slot])
        fleet.dispatch(slot, lmax, price=prices[slot])
    rec, si, dt = fleet.records, fleet.smart_idx, fleet.dt_h
    imp = rec["import_kw"][si, span]
    cost = float((imp @ prices[span]).sum() * dt)
    cost += (
        fleet.config.battery_degradation_usd_per_kwh
        * dt
        * np.abs(rec["battery_kw"][si, span]).sum()
    )
    cost += float(fleet.terminal_usd_per_kwh @ np.maximum(data.soc0_kwh - fleet.soc_kwh, 0.0))
    cost += 100 * COMFORT_PENALTY_USD_PER_C * rec["comfort_violation_c"][si, span].sum()
    feasible = True
    feeder = build_scenario_feeder(scenario)
    for k in range(t.n_slots):
        s = span.start + k
        res = run_power_flow(
            feeder,
            feeder.site_totals(rec["import_kw"][:, s]),
            feeder.site_totals(rec["q_kvar"][:, s]),
        )
        lv = feeder.net.bus.vn_kv.loc[res.bus].to_numpy() <= 0.4 + 1e-9
        feasible &= bool(
            res.vm_pu[lv].min() >= scenario.dso.v_min_pu
            and res.vm_pu[lv].max() <= scenario.dso.v_max_pu
            and np.nanmax(res.line_loading_pct) <= 100.0
            and res.trafo_loading_pct.max() <= 100.0
        )
    return cost, feasible


def test_oracle_costs_no_more_than_a_feasible_reference(quick, folders, tight_run) -> None:
    _, _, run, summary, _ = folders
    reference, feasible = _reference_objective(quick)
    assert feasible  # the homes' own plans keep the quick scenario's limits
    assert summary["objective_usd"] <= reference + 1e-6
    assert summary["slots_oracle_kept_limits"] == summary["slots"]
    # a tighter floor can only cost more
    tight_cost = sum(v.sum() for k, v in _costs(tight_run).items() if k != "energy_all_usd")
    assert tight_cost >= summary["objective_usd"] - 1e-6


def _costs(run):
    from sim.oracle.homes import schedule_cost_usd

    costs = schedule_cost_usd(run.data, run.best.dispatch)
    return {k: v for k, v in costs.items() if k != "objective_usd"}


def test_comparison_equals_the_tables(folders, tmp_path) -> None:
    market_dir, oracle_dir, run, _, _ = folders
    result = compare(market_dir, oracle_dir, tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text())["market"] == result["market"]
    md = (tmp_path / "compare.md").read_text()
    slot_h = run.slot_h
    v_min, v_max = run.v_band
    for name, folder in (("market", market_dir), ("oracle", oracle_dir)):
        slots = load_results(folder)["slots"]
        homes = load_results(folder)["homes"]
        price = dict(zip(slots["round"], slots.energy_price_usd_per_kwh, strict=True))
        cost = (homes.import_kw * homes["round"].map(price)).sum() * slot_h
        fig = result[name]
        assert fig["energy_cost_usd"] == pytest.approx(cost, abs=1e-9)
        assert f"{cost:.2f}" in md
        out = sum(
            (
                (slots[f"v_min_{ph}_pu"] < v_min - 1e-6) | (slots[f"v_max_{ph}_pu"] > v_max + 1e-6)
            ).sum()
            for ph in "abc"
        )
        assert fig["voltage_violations"] == out
        assert fig["peak_import_kw"] == pytest.approx(homes.groupby("round").import_kw.sum().max())
        assert fig["pv_curtailed_kwh"] == pytest.approx(homes.pv_curtailed_kw.sum() * slot_h)
        assert fig["comfort_violations"] == int((homes.comfort_violation_c > 1e-6).sum())
        assert fig["max_line_loading_pct"] == pytest.approx(slots.max_line_loading_pct.max())
    assert result["efficiency_gap_usd"] == pytest.approx(
        result["market"]["energy_cost_usd"] - result["oracle"]["energy_cost_usd"]
    )
    homes_gap = pd.read_csv(tmp_path / "compare_homes.csv").set_index("home")
    for name in ("market", "oracle"):
        homes = load_results(market_dir if name == "market" else oracle_dir)["homes"]
        slots = load_results(market_dir if name == "market" else oracle_dir)["slots"]
        price = homes["round"].map(slots.set_index("round").energy_price_usd_per_kwh)
        per_home = (homes.import_kw * price * slot_h).groupby(homes.home).sum()
        assert np.allclose(homes_gap[f"{name}_energy_usd"], per_home.loc[homes_gap.index])
    assert result["per_home_gap_usd"]["mean"] == pytest.approx(
        (homes_gap.market_energy_usd - homes_gap.oracle_energy_usd).mean()
    )
    per_slot = pd.read_csv(tmp_path / "compare_slots.csv")
    assert len(per_slot) == len(load_results(market_dir)["slots"])
    for name, folder in (("market", market_dir), ("oracle", oracle_dir)):
        slots = load_results(folder)["slots"].set_index("round").loc[per_slot["round"]]
        low = slots[[f"v_min_{ph}_pu" for ph in "abc"]].min(axis=1).to_numpy()
        high = slots[[f"v_max_{ph}_pu" for ph in "abc"]].max(axis=1).to_numpy()
        broken = (
            (low < v_min - 1e-6)
            | (high > v_max + 1e-6)
            | (slots.lines_over_limit.to_numpy() > 0)
            | (slots.max_trafo_loading_pct.to_numpy() > 100.0 + 1e-3)
        )
        assert (per_slot[f"{name}_broken"].to_numpy() == broken).all()
        excess = np.maximum(np.maximum(v_min - low, high - v_max), 0.0)
        assert np.allclose(per_slot[f"{name}_excess_v_pu"], excess)
    oracle_slots = load_results(oracle_dir)["slots"].set_index("round")
    proven = ~oracle_slots.oracle_linear_feasible.loc[per_slot["round"]].to_numpy()
    physically = per_slot.market_broken & per_slot.oracle_broken & proven
    assert result["physically_infeasible_rounds"] == per_slot["round"][physically].tolist()


def test_whole_cost_of_both_runs_priced_alike(folders, tmp_path) -> None:
    market_dir, oracle_dir, run, summary, market = folders
    result = compare(market_dir, oracle_dir, tmp_path)
    # the oracle's whole cost from its tables equals its own, from the dispatch's arrays
    for key in ("battery_degradation_usd", "terminal_soc_value_usd", "comfort_penalty_usd"):
        assert result["oracle"][key] == pytest.approx(summary[key], abs=1e-9)
    assert result["oracle"]["objective_usd"] == pytest.approx(summary["objective_usd"], abs=1e-9)
    # the market's, from its fleet's own records of the horizon's slots
    fleet, d = market.homes.fleet, run.data
    span = slice(d.first_slot, d.first_slot + d.n_slots)
    rec, si = fleet.records, fleet.smart_idx
    deg = d.degradation_usd_per_kwh * d.dt_h * np.abs(rec["battery_kw"][si, span]).sum()
    end = rec["soc_kwh"][si, span.stop - 1]
    terminal = float(d.terminal_usd_per_kwh @ np.maximum(d.soc0_kwh - end, 0.0))
    assert deg > 0  # the batteries move: not vacuous
    comfort = 100 * COMFORT_PENALTY_USD_PER_C * rec["comfort_violation_c"][si, span].sum()
    energy = result["market"]["energy_cost_hems_usd"]
    m = result["market"]
    assert m["battery_degradation_usd"] == pytest.approx(deg, rel=1e-9)
    assert m["terminal_soc_value_usd"] == pytest.approx(terminal, abs=1e-9)
    assert m["comfort_penalty_usd"] == pytest.approx(comfort, abs=1e-9)
    assert m["objective_usd"] == pytest.approx(energy + deg + terminal + comfort, rel=1e-9)
    gap = m["objective_usd"] - result["oracle"]["objective_usd"]
    assert result["objective_gap_usd"] == pytest.approx(gap)
    assert gap >= -1e-6  # nothing the homes do alone beats the optimum of the same objective
    md = (tmp_path / "compare.md").read_text()
    assert f"| {m['objective_usd']:.2f} | {result['oracle']['objective_usd']:.2f} |" in md


def test_home_costs_by_hand() -> None:
    # two slots of half an hour; home 0 smart, home 1 ordinary (no battery, NaN states)
    slots = pd.DataFrame({"round": [0, 1], "energy_price_usd_per_kwh": [0.10, 0.30]})
    homes = pd.DataFrame(
        {
            "round": [0, 0, 1, 1],
            "home": [0, 1, 0, 1],
            "import_kw": [2.0, 1.0, -1.0, 1.0],
            "battery_kw": [1.0, np.nan, -3.0, np.nan],
            "soc_kwh": [5.5, np.nan, 3.9, np.nan],
            "comfort_violation_c": [0.0, 0.0, 0.25, 0.0],
        }
    )
    pricing = pd.DataFrame(
        {
            "home": [0, 1],
            "smart": [True, False],
            "soc0_kwh": [5.0, np.nan],
            "terminal_usd_per_kwh": [0.4, 0.0],
            "degradation_usd_per_kwh": [0.02, 0.0],
        }
    )
    costs = home_costs({"slots": slots, "homes": homes}, 0.5, pricing)
    assert costs.loc[0, "energy_usd"] == pytest.approx((2.0 * 0.1 - 1.0 * 0.3) * 0.5)
    assert costs.loc[0, "degradation_usd"] == pytest.approx(0.02 * 4.0 * 0.5)
    assert costs.loc[0, "terminal_usd"] == pytest.approx(0.4 * 1.1)
    assert costs.loc[0, "comfort_usd"] == pytest.approx(100 * COMFORT_PENALTY_USD_PER_C * 0.25)
    assert costs.loc[1].to_dict() == pytest.approx(
        {"energy_usd": 0.2, "degradation_usd": 0.0, "terminal_usd": 0.0, "comfort_usd": 0.0,
         "objective_usd": 0.2}
    )  # fmt: skip
    assert costs.loc[0, "objective_usd"] == pytest.approx(-0.05 + 0.04 + 0.44 + 250.0)


def test_whole_cost_refuses_tables_without_the_battery(folders, tmp_path) -> None:
    market_dir, oracle_dir, *_ = folders
    old = tmp_path / "old"
    tables = load_results(market_dir)
    writer = ResultsWriter(old, load_scenario(QUICK))
    for name, table in tables.items():
        writer.append(name, table.drop(columns=["battery_kw", "soc_kwh"], errors="ignore"))
    writer.close()
    (old / "scenario.yaml").write_text((market_dir / "scenario.yaml").read_text())
    with pytest.raises(OracleError, match="battery_kw, soc_kwh: the run predates"):
        compare(old, oracle_dir, tmp_path / "cmp")


def test_cli_oracle_against_a_market_run(folders, tmp_path, capsys) -> None:
    market_dir, _, _, _, _ = folders
    out = tmp_path / "cli"
    assert main(["oracle", str(QUICK), "--out", str(out), "--against", str(market_dir), "-q"]) == 0
    assert not load_results(out)["slots"].empty and not load_results(out)["homes"].empty
    for name in ("costs.csv", "summary.json", "compare.md"):
        assert (out / name).exists()
    assert "| energy cost, all homes ($) |" in capsys.readouterr().out
    # a folder that is not a run of this scenario: one line, exit 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "scenario.yaml").write_text((market_dir / "scenario.yaml").read_text().replace(
        "seed: 7", "seed: 8"))  # fmt: skip
    assert main(["oracle", str(QUICK), "--out", str(out), "--against", str(other), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "homes differ" in err


def _slots(v_min: list[float], linear_ok: list[bool] | None = None) -> pd.DataFrame:
    n = len(v_min)
    table = pd.DataFrame({"round": range(n), "hour": np.arange(n) * 0.25})
    for ph in "abc":
        table[f"v_min_{ph}_pu"] = v_min
        table[f"v_max_{ph}_pu"] = 1.01
    table["max_line_loading_pct"] = 50.0
    table["lines_over_limit"] = 0
    table["max_trafo_loading_pct"] = 20.0
    if linear_ok is not None:
        table["oracle_linear_feasible"] = linear_ok
    return table


def test_slot_judgements_on_hand_built_tables() -> None:
    from sim.oracle.report import slot_comparison

    market = _slots([0.95, 0.93, 0.92, 0.91])
    oracle = _slots([0.94, 0.94, 0.935, 0.93], [True, True, False, True])
    out = slot_comparison(market, oracle, (0.94, 1.05))
    assert out.judgement.tolist() == [
        "kept",
        "market broke, oracle kept",
        "physically infeasible",
        "undecided (oracle not converged)",
    ]
    assert np.allclose(out.market_excess_v_pu, [0.0, 0.01, 0.02, 0.03])
    assert np.allclose(out.oracle_excess_v_pu, [0.0, 0.0, 0.005, 0.01])


def test_own_plan_is_the_homes_uncapped_plan_at_the_substation_price(quick) -> None:
    """The third run (no market): every HEMS home draws its plan at the substation price, no
    cap, and the slots' limits are those of an independent AC flow of that import."""
    run = run_own_plan(quick)
    homes, slots = run.tables["homes"], run.tables["slots"]
    t = run.scenario.time
    prices = np.asarray(day_prices(run.scenario)[t.first_slot :])
    np.testing.assert_array_equal(slots.sort_values("round").energy_price_usd_per_kwh, prices)
    smart = homes[homes.smart]
    assert smart.cap_kw.isna().all()  # uncapped
    np.testing.assert_allclose(smart.lmin_kw, smart.lmax_kw, atol=1e-9)  # one price: one point
    np.testing.assert_allclose(smart.import_kw, smart.lmax_kw, atol=1e-6)
    assert (smart.p_low_usd_per_kwh == smart["round"].map(dict(enumerate(prices)))).all()
    for r, ac, feeder in _ac_of_homes(run.scenario, homes)[:3]:  # runpp_3ph; the run's pgm
        row = slots.set_index("round").loc[r]
        kv = feeder.net.bus.vn_kv.loc[ac.bus].to_numpy()
        lv = kv <= feeder.net.bus.vn_kv.loc[feeder.lv_bus] + 1e-9
        for k, ph in enumerate("abc"):
            assert np.isclose(row[f"v_min_{ph}_pu"], np.nanmin(ac.vm_pu[lv, k]), atol=5e-4)
            assert np.isclose(row[f"v_max_{ph}_pu"], np.nanmax(ac.vm_pu[lv, k]), atol=5e-4)
        assert np.isclose(row.max_line_loading_pct, ac.line_loading_pct.max(), atol=0.05)
