"""DSO stage 2: lambda against the closed form, tight limits checked by AC, monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from grid_models import build_feeder, run_power_flow
from sim.dso import DSO, DSOError

PRICE = 0.12


@pytest.fixture(scope="module")
def case():
    """Small feeder, zones of >= 3 homes; ordinary homes draw 0.5 kW, HEMS ranges 1-4 kW."""
    f = build_feeder("small", min_group_size=3)
    dso = DSO(f)
    nonhems = f.site_totals(np.full(f.n_homes, 0.5))
    n_per_group = np.array([len(dso.weights)]) * 0 + f.zones.n_homes.to_numpy()
    lmin = 1.0 * n_per_group
    lmax = 4.0 * n_per_group
    s1 = dso.stage1(f.site_totals(np.full(f.n_homes, 2.5)), PRICE)
    return f, dso, nonhems, lmin, lmax, s1


def _welfare(lam, lmin, lmax, p_low, p_high, cost):
    d = lmax - lmin
    return np.sum(d * (p_high - cost) * lam - 0.5 * d * (p_high - p_low) * lam**2)


def _run(case, **kw):
    """Stage 2 with loose limits unless ``limits`` is given."""
    f, dso, nonhems, lmin, lmax, s1 = case
    kw.setdefault("limits", _loose(dso))
    return dso.stage2(lmin, lmax, s1.p_low, s1.p_high, nonhems, **kw)


def _loose(dso, **changes):
    """A wide band with the small margins these cases were sized for (the defaults grew)."""
    base = {"v_min_pu": 0.85, "v_max_pu": 1.15, "v_margin_pu": 5e-4, "i_margin_pct": 0.5}
    return dso.with_limits(**{**base, **changes})


def _ac_min_voltage(case, lam):
    f, dso, nonhems, lmin, lmax, _ = case
    p = nonhems + dso.weights @ (lmin + lam * (lmax - lmin))
    q = p * np.tan(np.arccos(0.95))
    res = run_power_flow(f, p, q)
    return res.vm_pu[np.isin(res.bus, dso.model.lv_buses)].min()


def test_loose_limits_single_lambda_is_the_closed_form(case):
    f, dso, nonhems, lmin, lmax, s1 = case
    res = _run(case)
    assert res.ac_ok and not res.infeasible and res.iterations == 1
    d = lmax - lmin
    closed = np.clip(
        np.sum(d * (s1.p_high - res.cost_g)) / np.sum(d * (s1.p_high - s1.p_low)), 0, 1
    )
    assert 0.05 < closed < 0.95  # interior optimum
    assert res.lam == pytest.approx(closed, abs=1e-5)
    grid = np.linspace(0, 1, 20001)  # independent scalar search
    values = [_welfare(x, lmin, lmax, s1.p_low, s1.p_high, res.cost_g) for x in grid]
    assert res.lam == pytest.approx(grid[int(np.argmax(values))], abs=1e-4)
    # cost per group is the supply cost: energy price times (1 + loss factor), near p_low/p_high mid
    assert np.all(res.cost_g > PRICE) and np.all(res.cost_g < 1.2 * PRICE)


def test_loose_limits_group_lambdas_are_the_closed_form(case):
    f, dso, nonhems, lmin, lmax, s1 = case
    res = _run(case, mode="group")
    closed = np.clip((s1.p_high - res.cost_g) / (s1.p_high - s1.p_low), 0, 1)
    np.testing.assert_allclose(res.lam_group, closed, atol=1e-5)


def test_tight_voltage_floor_lowers_lambda_and_ac_is_within_limits(case):
    f, dso, *_ = case
    loose = _run(case)
    v0 = _ac_min_voltage(case, 0.0)
    v_loose = _ac_min_voltage(case, loose.lam)
    floor = (v0 + v_loose) / 2  # feasible at lambda = 0, violated at the loose optimum
    limits = _loose(dso, v_min_pu=floor)
    res = _run(case, limits=limits)
    assert res.ac_ok and not res.infeasible, res.violations
    assert res.lam < loose.lam - 0.05
    lv = np.isin(f.net.bus.index, dso.model.lv_buses)
    assert res.vm_pu[lv].min() >= floor - 1e-6
    assert res.line_loading_pct.max() <= 100.0
    # the dispatch is not needlessly low: the floor is (nearly) reached
    assert res.vm_pu[lv].min() <= floor + 2 * limits.v_margin_pu + 1e-3


def test_tight_ampacity_lowers_lambda_and_ac_is_within_limits(case):
    f, dso, *_ = case
    loose = _run(case)
    line = int(f.net.line.index[f.net.line.name == "L1-2"][0])
    rating = 0.85 * loose.line_loading_pct[line].max() / 100 * f.net.line.max_i_ka.at[line] * 1e3
    res = _run(case, limits=_loose(dso, line_ampacity_a={line: rating}))
    assert res.ac_ok, res.violations
    assert res.lam < loose.lam
    assert res.line_loading_pct.max() <= 100.0 + 1e-6


def test_tighter_limits_never_raise_lambda(case):
    f, dso, *_ = case
    v0 = _ac_min_voltage(case, 0.0)
    v1 = _ac_min_voltage(case, 1.0)
    lams = []
    for floor in np.linspace(v1 - 0.002, v0 - 0.001, 4):
        res = _run(case, limits=_loose(dso, v_min_pu=floor))
        assert res.ac_ok
        lams.append(res.lam)
    assert np.all(np.diff(lams) <= 1e-6), lams
    assert lams[-1] < lams[0]


def test_infeasible_even_at_lambda_zero_is_reported(case):
    f, dso, *_ = case
    v0 = _ac_min_voltage(case, 0.0)
    res = _run(case, limits=_loose(dso, v_min_pu=v0 + 0.005))
    assert res.infeasible
    assert res.lam == 0.0 and not res.ac_ok
    assert "min voltage" in res.violations


def test_eu_lv_slot_with_ac_check():
    f = build_feeder("ieee_eu_lv")
    dso = DSO(f)
    s1 = dso.stage1(f.site_totals(np.full(f.n_homes, 1.5)), PRICE)
    n = f.zones.n_homes.to_numpy()
    res = dso.stage2(1.0 * n, 3.0 * n, s1.p_low, s1.p_high, np.zeros(f.n_sites))
    assert res.ac_ok and res.iterations <= dso.max_iter
    # 3 kW per home on phase a overloads the 190 A trunk: lambda stops short of the optimum
    d = 2.0 * n
    closed = np.sum(d * (s1.p_high - res.cost_g)) / np.sum(d * (s1.p_high - s1.p_low))
    assert res.lam < closed
    assert res.line_loading_pct.max() <= 100.0 + 1e-6
    assert np.abs(res.v_pred_pu - res.v_ac_pu).max() < 5e-3
    # the monitored buses (busbar, homes, junctions) carry each phase's extremes
    lv = np.isin(f.net.bus.index, dso.model.lv_buses)
    mon = np.isin(f.net.bus.index, dso.model.lv_buses[dso.rows.v_bus_pos])
    np.testing.assert_allclose(res.vm_pu[lv].min(0), res.vm_pu[mon].min(0), atol=1e-9)
    np.testing.assert_allclose(res.vm_pu[lv].max(0), res.vm_pu[mon].max(0), atol=1e-9)


def test_export_at_low_lambda_raises_lambda_to_the_least_violating_point(case):
    """When lambda = 0 means every HEMS home exports 6 kW (over-voltage) and lambda = 1 means
    4 kW of import, the feasible lambdas lie in between: stage 2 must not fall back to 0."""
    f, dso, nonhems, _, _, s1 = case
    n = f.zones.n_homes.to_numpy()
    lmin, lmax = -6.0 * n, 4.0 * n
    limits = dso.with_limits(v_min_pu=0.94, v_max_pu=1.02)
    res = dso.stage2(lmin, lmax, s1.p_low, s1.p_high, nonhems, limits=limits)
    p0 = nonhems + dso.weights @ lmin
    ac0 = run_power_flow(f, p0, p0 * np.tan(np.arccos(0.95)))
    assert ac0.vm_pu[np.isin(ac0.bus, dso.model.lv_buses)].max() > 1.02  # lambda = 0 violates
    assert res.lam > 0.05
    assert not res.infeasible and res.ac_ok


def test_pgm_ac_engine_clears_the_same_lambda_as_pandapower():
    """The EU LV slot above, with the DSO's AC checks on power-grid-model: the binding trunk
    limit gives the same lambda and the same AC loading within the engines' agreement."""
    f = build_feeder("ieee_eu_lv")
    results = []
    for engine in ("pandapower", "pgm"):
        dso = DSO(f, ac_engine=engine)
        s1 = dso.stage1(f.site_totals(np.full(f.n_homes, 1.5)), PRICE)
        n = f.zones.n_homes.to_numpy()
        limits = dso.with_limits(v_margin_pu=5e-4, i_margin_pct=0.5)  # off the AC check's edge
        results.append(
            dso.stage2(1.0 * n, 3.0 * n, s1.p_low, s1.p_high, np.zeros(f.n_sites), limits=limits)
        )
    pp_res, pgm_res = results
    assert pgm_res.ac_ok
    assert pgm_res.lam == pytest.approx(pp_res.lam, abs=2e-3)
    assert pgm_res.line_loading_pct.max() == pytest.approx(pp_res.line_loading_pct.max(), abs=0.5)
    np.testing.assert_allclose(pgm_res.vm_pu, pp_res.vm_pu, atol=2e-3)


def test_unknown_ac_engine_is_named():
    with pytest.raises(DSOError, match="ac_engine must be 'pandapower' or 'pgm', got 'matpower'"):
        DSO(build_feeder("small"), ac_engine="matpower")


def test_segment_fill_is_the_inverse_of_lambdas() -> None:
    """`_Segments.fill(lam)` puts each group at `lam` along its curve, segments in order: its
    lambdas are `lam` again, and its power is Lmin plus that share of every segment passed."""
    from sim.dso.dso import _Segments

    rng = np.random.default_rng(4)
    points = np.sort(rng.uniform(-5.0, 40.0, (4, 5)), axis=1)[:, ::-1]  # falling with price
    ladder = np.sort(rng.uniform(-5.0, 5.0, (4, 5)), axis=1)
    segments = _Segments(points, ladder, single=False, q_points=None)
    for lam in (np.array([0.0, 0.3, 0.75, 1.0]), rng.uniform(0, 1, 4)):
        s = segments.fill(lam)
        np.testing.assert_allclose(segments.lambdas(s), lam, atol=1e-12)
        kw = points[:, -1] + segments.m @ s
        # independent: walk each curve from Lmin (the last point) by lam x 4 segments
        for g in range(4):
            curve = points[g, ::-1]  # rising demand from Lmin
            pos = lam[g] * 4
            j = min(int(pos), 3)
            expected = curve[j] + (pos - j) * (curve[j + 1] - curve[j])
            assert np.isclose(kw[g], expected)
