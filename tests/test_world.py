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


LOADING_TOL_PCT = 0.05


def golden_figures(out_dir: Path) -> dict:
    """Per slot: lambda of every group, voltage extremes per phase, line and transformer
    loading extremes."""
    tables = load_results(out_dir)
    slots = tables["slots"].sort_values("round")
    groups = tables["groups"].sort_values(["group", "round"])
    figures = {"lambda": slots["lambda"].round(6).tolist()}
    for group, g in groups.groupby("group"):
        figures[f"lambda_group_{group}"] = g["lambda_group"].round(6).tolist()
    for ph in "abc":
        figures[f"v_min_{ph}_pu"] = slots[f"v_min_{ph}_pu"].round(6).tolist()
        figures[f"v_max_{ph}_pu"] = slots[f"v_max_{ph}_pu"].round(6).tolist()
    for column in ("max_line_loading_pct", "max_trafo_loading_pct"):
        figures[column] = slots[column].round(4).tolist()
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


def test_the_caps_lie_in_the_bids_and_hold(quick_run) -> None:
    _, out, _ = quick_run
    tables = load_results(out)
    smart = tables["homes"][tables["homes"].smart]
    assert (smart.cap_kw >= smart.lmin_kw - 1e-6).all()
    assert (smart.cap_kw <= smart.lmax_kw + 1e-6).all()
    assert (smart.import_kw <= smart.cap_kw + 1e-6).all()
    assert tables["groups"].lambda_group.between(0, 1).all()


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
    slots = load_results(out)["slots"]
    # the AC check accepts from the floor plus the margin, and the QP's linear floor lands the
    # AC voltage a few mpu above that where it binds
    floor = used.v_min_pu + used.v_margin_pu + 6e-3
    dso_min = slots[[f"dso_v_min_{ph}_pu" for ph in "abc"]].min(axis=1)
    binding = int((dso_min <= floor).sum())
    assert binding >= 3, f"the floor bound the dispatch in {binding} slots: the test is vacuous"
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
    assert set(now) == set(golden), "the golden file's figures differ: regenerate it"
    for key in now:
        tol = (
            LAMBDA_TOL
            if key.startswith("lambda")
            else LOADING_TOL_PCT
            if key.endswith("_pct")
            else VOLTAGE_TOL_PU
        )
        assert np.allclose(now[key], golden[key], atol=tol), key


def test_offline_market_equals_the_cosimulation(quick_run) -> None:
    """sim.offline runs the same decisions without mosaik and chain: same lambdas, caps,
    imports and voltages as the co-simulation."""
    from sim.offline import run_offline

    scenario, out, _ = quick_run
    cosim = load_results(out)
    offline = run_offline(scenario).tables
    for table, keys, columns in (
        ("slots", ["round"], ["lambda", "v_min_a_pu", "v_max_c_pu", "max_line_loading_pct"]),
        ("groups", ["round", "group"], ["lambda_group", "lmin_kw", "lmax_kw"]),
        ("homes", ["round", "home"], ["cap_kw", "import_kw", "q_kvar"]),
    ):
        a = cosim[table].sort_values(keys).reset_index(drop=True)
        b = offline[table].sort_values(keys).reset_index(drop=True)
        assert len(a) == len(b) > 0
        for column in columns:
            np.testing.assert_allclose(
                a[column].astype(float), b[column].astype(float), atol=1e-6, err_msg=column
            )


def test_group_mode_dispatches_each_group_at_its_own_lambda(quick_run) -> None:
    """Every HEMS home's cap is its own four-point bid walked to its group's posted lambda,
    and the groups' lambdas differ where the feeder needs it."""
    from sim.chain.units import lambda_as_posted
    from sim.protocol import dispatch_cap

    _, out, outcome = quick_run
    tables = load_results(out)
    groups = tables["groups"].set_index(["round", "group"])["lambda_group"]
    assert (tables["groups"].groupby("round").lambda_group.nunique() > 1).any()
    tx = tables["transactions"]
    assert (tx.label == "private.submitLambdas").sum() == len(tables["slots"])
    assert not (tx.label == "private.submitLambda").any()
    homes = tables["homes"][tables["homes"].smart]
    last = homes["round"].max()
    agent = outcome.parts.homes_agent
    rows = homes[homes["round"] == last].set_index("home")
    for home, row in rows.iterrows():
        lam = lambda_as_posted(groups[(last, row.group)])  # as read back from the chain
        cap = dispatch_cap(lam, agent.points_kw[home])
        assert abs(cap - row.cap_kw) < 1e-6


def test_paper_mode_posts_one_lambda_per_round(tmp_path) -> None:
    """dso.mode: paper is the seed paper's design: one submitLambda per round, every group
    at the same lambda, caps lambda * Lmax + (1 - lambda) * Lmin of the two-point band."""
    from sim.scenario import override

    scenario = override(load_scenario(SCENARIOS_DIR / "quick.yaml"), {"dso.mode": "paper"})
    scenario = override(scenario, {"time.hours": 1})
    run_scenario(scenario, tmp_path, progress=False)
    tables = load_results(tmp_path)
    tx = tables["transactions"]
    rounds = len(tables["slots"])
    assert (tx.label == "private.submitLambda").sum() == rounds == 4
    assert not (tx.label == "private.submitLambdas").any()
    assert (tables["groups"].groupby("round").lambda_group.nunique() == 1).all()
    lam = tables["slots"].set_index("round")["lambda"]
    smart = tables["homes"][tables["homes"].smart]
    expected = smart["round"].map(lam) * smart.lmax_kw + (1 - smart["round"].map(lam)) * (
        smart.lmin_kw
    )
    assert (abs(expected - smart.cap_kw) < 1e-3).all()


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
