"""The co-simulation end to end through mosaik on the quick scenario."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim.cosim.world import build_parts, build_world, run_scenario
from sim.results.plots import plot_results
from sim.results.writer import finished_slots, load_results, summarize
from sim.scenario import SCENARIOS_DIR, load_scenario

GOLDEN = Path(__file__).parent / "golden" / "quick.json"
LAMBDA_TOL = 1e-3
VOLTAGE_TOL_PU = 1e-4


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    scenario = load_scenario(SCENARIOS_DIR / "quick.yaml")
    out = tmp_path_factory.mktemp("quick")
    outcome = run_scenario(scenario, out, progress=False)
    return scenario, out, outcome


def golden_figures(out_dir: Path) -> dict:
    slots = load_results(out_dir)["slots"].sort_values("round")
    figures = {"lambda": slots["lambda"].round(6).tolist()}
    for ph in "abc":
        figures[f"v_min_{ph}_pu"] = slots[f"v_min_{ph}_pu"].round(6).tolist()
        figures[f"v_max_{ph}_pu"] = slots[f"v_max_{ph}_pu"].round(6).tolist()
    return figures


def test_quick_scenario_runs_every_slot_and_writes_every_table(quick_run) -> None:
    scenario, out, _ = quick_run
    assert finished_slots(out) == list(range(scenario.time.n_slots))
    tables = load_results(out)
    for name, table in tables.items():
        assert not table.empty, f"{name} table is empty"
    homes = tables["homes"]
    assert len(homes) == scenario.time.n_slots * homes.home.nunique()
    plots = plot_results(out)
    assert [p.name for p in plots] == [
        "dispatch.png",
        "prices.png",
        "voltages.png",
        "loading.png",
        "dlmp.png",
        "gas.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in plots)


def test_dispatch_follows_lambda_and_the_caps_hold(quick_run) -> None:
    _, out, _ = quick_run
    tables = load_results(out)
    lam = tables["slots"].set_index("round")["lambda"]
    smart = tables["homes"][tables["homes"].smart]
    expected = (
        lam.loc[smart["round"]].to_numpy() * smart.lmax_kw
        + (1 - lam.loc[smart["round"]].to_numpy()) * smart.lmin_kw
    )
    # lambda travels on chain as an integer of 1e-6; the cap uses the posted value.
    assert np.allclose(smart.cap_kw, expected, atol=1e-5 * smart.lmax_kw.abs().max() + 1e-9)
    assert (smart.import_kw <= smart.cap_kw + 1e-6).all()
    assert (lam.between(0, 1)).all()


def test_dso_group_sums_equal_the_homes_ranges(quick_run) -> None:
    """What the DSO unmasked from the chain is the sum of the homes' own bounds (to 1 W)."""
    _, out, _ = quick_run
    tables = load_results(out)
    homes = tables["homes"][tables["homes"].submitted]
    truth = homes.groupby(["round", "group"])[["lmin_kw", "lmax_kw"]].sum()
    dso = tables["groups"].set_index(["round", "group"])[["lmin_kw", "lmax_kw"]]
    joined = truth.join(dso, rsuffix="_dso")
    n = homes.groupby(["round", "group"]).size()
    for col in ("lmin_kw", "lmax_kw"):
        assert (abs(joined[col] - joined[f"{col}_dso"]) <= 0.0005 * n + 1e-9).all()


def test_no_voltage_outside_the_band_after_dispatch(quick_run) -> None:
    """The quick scenario's floor binds in most slots; the grid's AC voltages after dispatch
    must still stay in the band (the DSO's margin covers its model error)."""
    _, out, run = quick_run
    used = run.parts.scenario.dso
    groups = load_results(out)["groups"]
    scarce = groups[groups.p_high_usd_per_kwh > 1.0]["round"].nunique()
    assert scarce >= 3, f"only {scarce} slots priced a binding limit: the test would be vacuous"
    summary = summarize(out, (used.v_min_pu, used.v_max_pu), 0.25)
    assert summary["voltage_violations"] == 0
    voltages = load_results(out)["voltages"]
    lv = voltages[voltages.bus != 0]  # bus 0 is the MV source
    assert lv.vm_pu.between(used.v_min_pu - 1e-6, used.v_max_pu + 1e-6).all()


def test_regression_lambda_and_voltages_match_golden(quick_run) -> None:
    _, out, _ = quick_run
    if not GOLDEN.exists():
        pytest.fail(f"no golden file {GOLDEN}: run `python tests/update_golden.py`")
    golden = json.loads(GOLDEN.read_text())
    now = golden_figures(out)
    assert np.allclose(now["lambda"], golden["lambda"], atol=LAMBDA_TOL)
    for key in now:
        if key != "lambda":
            assert np.allclose(now[key], golden[key], atol=VOLTAGE_TOL_PU), key


def test_dso_receives_no_home_data_through_mosaik(tmp_path) -> None:
    """The world's data flows: nothing from the homes reaches the DSO; the DSO reads the chain
    and its substation meter (the grid's total draw), nothing per home."""
    from sim.results.writer import ResultsWriter

    scenario = load_scenario(SCENARIOS_DIR / "quick.yaml")
    parts = build_parts(scenario)
    world = build_world(parts, ResultsWriter(tmp_path, scenario))
    try:
        flows = world.blockhems_flows
        into_dso = [f for f in flows if f.dest == "DSO"]
        assert {(f.src, f.attrs) for f in into_dso} == {
            ("Chain", ("clock",)),
            ("Grid", ("substation",)),
        }
        assert not any(
            f.src == "Homes" and f.dest in ("DSO", "Chain") and f.attrs != ("done",) for f in flows
        )
        dso_full_id = "DSOSim-0.DSO"
        assert set(world.entity_graph.neighbors(dso_full_id)) == {
            "ChainSim-0.Chain",
            "GridSim-0.Grid",
            "RecorderSim-0.Recorder",
        }
    finally:
        world.shutdown()


def test_dso_agent_never_holds_a_home_client(quick_run) -> None:
    _, _, outcome = quick_run
    agent = outcome.parts.dso_agent
    from sim.chain.private import HomeClient

    assert not any(isinstance(v, HomeClient) for v in vars(agent).values())


def test_dropouts_are_recovered_and_sums_match_the_survivors(tmp_path) -> None:
    """One hour of the quick scenario with homes missing rounds: the survivors' recovery words
    let the DSO read the exact sum of the homes that did submit."""
    data = load_scenario(SCENARIOS_DIR / "quick.yaml").model_dump()
    data["time"]["hours"] = 1
    data["chain"]["dropout_probability"] = 0.15
    from sim.scenario import parse_scenario

    run_scenario(parse_scenario(data), tmp_path, progress=False)
    tables = load_results(tmp_path)
    homes, groups = tables["homes"], tables["groups"]
    assert (~homes[homes.smart].submitted).any(), "no home dropped out: raise the probability"
    tx = tables["transactions"]
    # every survivor of a group that kept the minimum size, and no one else, sends one
    # recovery word per round (a group below it fails and reveals nothing)
    recovered = tx[tx.label == "private.recover"].groupby("round").size()
    per_group = homes[homes.submitted].groupby(["round", "group"]).size()
    minimum = load_scenario(SCENARIOS_DIR / "quick.yaml").aggregation.min_group_size
    survivors = per_group[per_group >= minimum].groupby("round").sum()
    assert recovered.to_dict() == survivors.to_dict()
    truth = homes[homes.submitted].groupby(["round", "group"])[["lmin_kw", "lmax_kw"]].sum()
    revealed = groups[groups.revealed].set_index(["round", "group"])
    joined = revealed.join(truth, rsuffix="_homes")
    assert len(joined) > 0
    assert (abs(joined.lmin_kw - joined.lmin_kw_homes) < 0.01).all()
    assert (abs(joined.lmax_kw - joined.lmax_kw_homes) < 0.01).all()
