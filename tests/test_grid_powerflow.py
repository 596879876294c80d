"""Power-flow wrapper on the small feeder: arrays, energy balance, hand check, errors."""

from __future__ import annotations

import numpy as np
import pytest

from grid_models import GridModelError, PowerFlowError, build_feeder, run_power_flow
from grid_models.linear import phase_impedance


@pytest.fixture(scope="module")
def small():
    return build_feeder("small")


def _base(f):
    return f.site_totals(f.homes.p_kw.to_numpy()), f.site_totals(f.homes.q_kvar.to_numpy())


def test_result_arrays_and_energy_balance(small):
    p, q = _base(small)
    res = run_power_flow(small, p, q, slot=7)
    nb, nl = len(small.net.bus), len(small.net.line)
    assert res.vm_pu.shape == (nb, 3) and res.line_i_a.shape == (nl, 3)
    assert res.line_loading_pct.shape == (nl, 3) and res.p_sub_kw.shape == (3,)
    # substation power = demand + losses (kW)
    assert res.p_sub_kw.sum() == pytest.approx(p.sum() + res.losses_kw, abs=1e-3)
    assert res.losses_kw > 0
    # loading (%) is current over the line rating
    amp = small.net.line.max_i_ka.to_numpy()[:, None] * 1e3
    np.testing.assert_allclose(res.line_loading_pct, res.line_i_a / amp * 100, rtol=1e-6)
    # phase a carries most homes: lowest voltage is phase a at the far end (bus of L3-4)
    far = small.net.line.to_bus[small.net.line.name == "L3-4"].iat[0]
    k = np.unravel_index(np.argmin(res.vm_pu), res.vm_pu.shape)
    assert (res.bus[k[0]], k[1]) == (far, 0)


def test_no_load_is_flat(small):
    res = run_power_flow(small, np.zeros(small.n_sites), np.zeros(small.n_sites))
    np.testing.assert_allclose(res.vm_pu, 1.0, atol=1e-6)
    assert res.losses_kw == pytest.approx(0.0, abs=1e-6)


def test_single_phase_drop_matches_hand_calculation(small):
    """One 6 kW pf-1 load on bus 3 phase a: drop ~ Re(Zs) I over transformer + two cables,
    with Zs = (z0 + 2 z1)/3 the self impedance; phase b, c move by the mutual part."""
    net = small.net
    site = small.sites.index[(small.sites.bus == 3) & (small.sites.phase == "a")][0]
    p = np.zeros(small.n_sites)
    p[site] = 6.0
    res = run_power_flow(small, p, np.zeros(small.n_sites))
    v = 400 / np.sqrt(3)
    i = 6e3 / v
    zs = 0j
    for name in ("L1-2", "L2-3"):
        ln = net.line[net.line.name == name].iloc[0]
        z = phase_impedance(
            (ln.r_ohm_per_km + 1j * ln.x_ohm_per_km) * ln.length_km,
            (ln.r0_ohm_per_km + 1j * ln.x0_ohm_per_km) * ln.length_km,
        )
        zs += z[0, 0]
    tr = net.trafo.iloc[0]
    zs += tr.vkr_percent / 100 * 0.4**2 / tr.sn_mva  # resistive part, pf-1 current
    expected = (zs.real * i) / v
    row = np.flatnonzero(res.bus == 3)[0]
    drop = 1.0 - res.vm_pu[row, 0]
    assert drop == pytest.approx(expected, rel=0.15)
    assert res.vm_pu[row, 0] < min(res.vm_pu[row, 1], res.vm_pu[row, 2])


def test_non_convergence_names_slot_and_injection(small):
    p, q = _base(small)
    p[4] = 5e4  # 50 MW on one phase of an LV cable
    with pytest.raises(PowerFlowError, match=r"slot 42.*site 4 \(bus \d+ phase \w\): 50000\.00 kW"):
        run_power_flow(small, p, q, slot=42)
    # the next run still works (no stale warm start)
    p, q = _base(small)
    assert run_power_flow(small, p, q).vm_pu.min() > 0.9


def test_bad_power_flow_input(small):
    p, q = _base(small)
    with pytest.raises(GridModelError, match="p_kw has shape"):
        run_power_flow(small, p[:-1], q)
    p[2] = np.nan
    with pytest.raises(GridModelError, match="p_kw is not finite at sites \\[2\\]"):
        run_power_flow(small, p, q)
    with pytest.raises(GridModelError, match="per-home array"):
        small.site_totals(np.ones(3))
