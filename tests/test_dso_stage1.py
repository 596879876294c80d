"""DSO stage 1: DLMP decomposition, duals against finite differences, binding limits."""

from __future__ import annotations

import numpy as np
import pytest

from grid_models import build_feeder, run_power_flow
from sim.dso import DSO
from sim.dso.limits import DSOLimits

PRICE = 0.12  # $/kWh
TOL = 1e-6  # solver tolerance on duals ($/kWh)
TAN = np.tan(np.arccos(0.95))


@pytest.fixture(scope="module")
def small():
    f = build_feeder("small")
    return f, DSO(f)


def _forecast(f):
    return f.site_totals(f.homes.p_kw.to_numpy())


def _site(f, bus, phase):
    return int(f.sites.index[(f.sites.bus == bus) & (f.sites.phase == phase)][0])


def _fd_cost(dso, p, site, limits, h=1e-3):
    """Finite difference of the optimal stage-1 cost ($/h per kW) at the same linearization."""
    base = dso.solve_stage1_at(dso.op, p, PRICE, limits)["cost_per_h"]
    p2 = p.copy()
    p2[site] += h
    return (dso.solve_stage1_at(dso.op, p2, PRICE, limits)["cost_per_h"] - base) / h


def test_unconstrained_components_and_duals(small):
    f, dso = small
    p = _forecast(f)
    res = dso.stage1(p, PRICE, slot=3)
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=TOL)
    np.testing.assert_allclose(res.congestion, 0.0, atol=TOL)
    np.testing.assert_allclose(res.voltage, 0.0, atol=TOL)
    np.testing.assert_allclose(res.energy, PRICE)
    np.testing.assert_allclose(res.shed_kw, 0.0, atol=TOL)
    for s in range(f.n_sites):  # the dual is d(optimal cost)/d(demand), sign included
        assert res.dlmp[s] == pytest.approx(_fd_cost(dso, p, s, dso.limits), rel=1e-6)
    # loss component against a central difference of AC losses (stated: 10 % or 2e-4 $/kWh)
    q = p * TAN
    h = 0.5
    for s in range(f.n_sites):
        up, dn = p.copy(), p.copy()
        up[s] += h
        dn[s] -= h
        fd = (run_power_flow(f, up, q).losses_kw - run_power_flow(f, dn, q).losses_kw) / (2 * h)
        assert res.loss[s] == pytest.approx(PRICE * fd, rel=0.1, abs=2e-4)
    # bands bracket the supply cost of each group
    assert np.all(res.p_low < res.p_high)
    base = dso.weights.T @ (res.energy + res.loss)
    np.testing.assert_allclose((res.p_low + res.p_high) / 2, base)


def test_tight_ampacity_prices_congestion_behind_the_line_only(small):
    f, dso = small
    p = _forecast(f)
    line = int(f.net.line.index[f.net.line.name == "L3-4"][0])
    far = int(f.net.line.to_bus.at[line])
    ac = run_power_flow(f, p, p * TAN)
    i_abc = ac.line_i_a[line]  # phase a carries 3 homes, b 2, c 1
    assert i_abc[0] > i_abc[1] > i_abc[2]
    rating = (i_abc[0] + i_abc[1]) / 2  # binds phase a only
    limits = dso.with_limits(line_ampacity_a={line: rating})
    res = dso.stage1(p, PRICE, limits=limits)
    behind = _site(f, far, "a")
    assert res.congestion[behind] > 1e-3
    others = np.arange(f.n_sites) != behind
    np.testing.assert_allclose(res.congestion[others], 0.0, atol=TOL)
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=TOL)
    assert res.shed_kw[behind] > 0
    assert res.dlmp[behind] == pytest.approx(_fd_cost(dso, p, behind, limits), rel=1e-4)


def test_raised_voltage_floor_prices_the_weak_phase_far_end(small):
    f, dso = small
    p = _forecast(f)
    ac = run_power_flow(f, p, p * TAN)
    far = int(f.net.line.to_bus[f.net.line.name == "L3-4"].iat[0])
    row = np.flatnonzero(ac.bus == far)[0]
    assert np.argmin(ac.vm_pu[row]) == 0  # phase a is the weak phase
    v_floor = ac.vm_pu[row, 0] + 0.002  # the floor now binds at the far end of phase a
    limits = dso.with_limits(v_min_pu=v_floor)
    res = dso.stage1(p, PRICE, limits=limits)
    weak = _site(f, far, "a")
    assert res.voltage[weak] > 1e-3
    assert res.voltage[weak] == res.voltage.max()
    np.testing.assert_allclose(res.congestion, 0.0, atol=TOL)
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=TOL)
    assert res.dlmp[weak] == pytest.approx(_fd_cost(dso, p, weak, limits), rel=1e-4)
    assert res.p_high.max() > res.p_low.max() + 2 * dso.band_fraction * PRICE - 1e-12


def test_eu_lv_unconstrained_loss_component():
    f = build_feeder("ieee_eu_lv")
    dso = DSO(f)
    p = f.site_totals(np.full(f.n_homes, 1.5))  # trunk (70 mm2 Al, 190 A) at 75 %
    res = dso.stage1(p, PRICE)
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=TOL)
    np.testing.assert_allclose(res.congestion, 0.0, atol=TOL)
    np.testing.assert_allclose(res.voltage, 0.0, atol=TOL)
    q = p * TAN
    h = 0.5
    for s in (0, int(np.argmax(res.loss)), f.n_sites - 1):
        up, dn = p.copy(), p.copy()
        up[s] += h
        dn[s] -= h
        fd = (run_power_flow(f, up, q).losses_kw - run_power_flow(f, dn, q).losses_kw) / (2 * h)
        assert res.loss[s] == pytest.approx(PRICE * fd, rel=0.1, abs=2e-4)


def test_reuse_mode_prices_close_to_ac_mode():
    """stage1_ac=False linearizes at the previous AC point: components still add up, voltages
    stay within 2e-3 pu and DLMPs within 4e-3 $/kWh (3 % of the price: the loss factors are
    those of the old point) of the AC-anchored ones for a 30 % change of the forecast."""
    f = build_feeder("small")
    p = _forecast(f)
    # uncongested at 1.3 p (with a 0.005 pu margin the floor binds there, and DLMPs at a
    # binding limit follow the limit's dual, not the loss factors this test compares)
    lim = DSOLimits(f.v_min_pu, f.v_max_pu, v_margin_pu=0.003)
    reuse = DSO(f, stage1_ac=False, limits=lim)
    reuse.stage1(p, PRICE)  # first call has no point yet: runs AC
    res = reuse.stage1(1.3 * p, PRICE)
    ref = DSO(f, limits=lim).stage1(1.3 * p, PRICE)
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=TOL)
    np.testing.assert_allclose(res.dlmp, ref.dlmp, atol=4e-3)
    np.testing.assert_allclose(res.vm_pu, ref.vm_pu, atol=2e-3)


def test_reverse_flow_over_voltage_curtails_export_and_prices_negative(small):
    """Homes exporting 6 kW each raise the far end above a 1.03 pu ceiling: stage 1 stays
    feasible by curtailing export, and the voltage component there is negative."""
    f, dso = small
    p = f.site_totals(np.full(f.n_homes, -6.0))
    limits = dso.with_limits(v_max_pu=1.03)
    ac = run_power_flow(f, p, np.zeros(f.n_sites))
    assert ac.vm_pu[np.isin(ac.bus, dso.model.lv_buses)].max() > 1.03
    res = dso.stage1(p, PRICE, limits=limits)
    assert res.shed_kw.min() < -1e-3  # export curtailed somewhere
    assert (res.shed_kw <= 1e-9).all()  # and no demand shed: there is none
    assert res.voltage.min() < -1e-3
    # |s| makes the QP non-smooth at curtailing sites; the duals agree to a few 1e-6 $/kWh.
    np.testing.assert_allclose(res.dlmp_sum, res.dlmp, atol=1e-5)
    served = p - res.shed_kw
    ac_after = run_power_flow(f, served, np.zeros(f.n_sites))
    assert ac_after.vm_pu[np.isin(ac_after.bus, dso.model.lv_buses)].max() < 1.03 + 0.005
