"""Feeder builders: home tables, zones, the EU LV data fixes, the large feeder, bad names."""

from __future__ import annotations

import numpy as np
import pandapower.networks as pn
import pytest

from grid_models import GridModelError, build_feeder, run_power_flow
from grid_models.feeders import EU_LV_AMPACITY_A, MAX_GROUP_SIZE


@pytest.fixture(scope="module")
def eu():
    return build_feeder("ieee_eu_lv")


def _check_zones(feeder, min_size):
    homes = feeder.homes
    for _, z in feeder.zones.iterrows():
        members = homes[homes.zone == z.zone]
        assert len(members) == z.n_homes
        assert min_size <= len(members) <= MAX_GROUP_SIZE
        assert set(members.phase) == {z.phase}
    assert (homes.zone >= 0).all()


def test_small_feeder_is_unbalanced_and_zoned():
    f = build_feeder("small", min_group_size=3)
    counts = f.homes.phase.value_counts()
    assert counts.to_dict() == {"a": 10, "b": 7, "c": 5}
    assert f.n_sites == 12
    _check_zones(f, 3)
    # sites sum homes: per-home array of ones gives the home count per site
    np.testing.assert_array_equal(f.site_totals(np.ones(f.n_homes)), f.sites.n_homes)


def test_eu_lv_homes_zones_and_fixes(eu):
    homes = eu.homes
    assert len(homes) == 55
    assert homes.phase.value_counts().to_dict() == {"a": 21, "b": 19, "c": 15}
    assert homes.bus.is_unique  # one home per bus in this feeder
    _check_zones(eu, 5)
    # fix 1: every home has a reactive power at power factor 0.95
    loaded = homes.p_kw > 0
    pf = homes.p_kw[loaded] / np.hypot(homes.p_kw[loaded], homes.q_kvar[loaded])
    np.testing.assert_allclose(pf, 0.95, rtol=1e-9)
    orig = pn.ieee_european_lv_asymmetric()
    al = orig.asymmetric_load[orig.asymmetric_load.p_b_mw > 0]
    assert (al.q_b_mvar / al.p_b_mw < 0.01).all()  # the defect: phase b has (almost) no q
    # fix 2: ampacity from conductor type (was one placeholder for all lines)
    assert orig.line.max_i_ka.nunique() == 1
    expected = eu.net.line.std_type.map(EU_LV_AMPACITY_A) / 1e3
    np.testing.assert_allclose(eu.net.line.max_i_ka, expected)
    assert eu.net.line.max_i_ka.nunique() == len(EU_LV_AMPACITY_A)
    # fix 3: source and band; base load stays inside the band on every phase
    assert eu.net.ext_grid.vm_pu.iat[0] == 1.0
    assert eu.v_min_pu == pytest.approx(0.9002, abs=1e-3)
    assert eu.v_max_pu == pytest.approx(1.0534, abs=1e-3)
    assert len(eu.notes) == 3


def test_eu_lv_neutral_shift_fixed(eu):
    """At 1.05 pu source the light phase exceeds the band's top; at 1.0 pu it does not."""
    p = eu.site_totals(eu.homes.p_kw.to_numpy())
    q = eu.site_totals(eu.homes.q_kvar.to_numpy())
    res = run_power_flow(eu, p, q, slot=0)
    lv = res.bus != eu.net.trafo.hv_bus.iat[0]
    assert res.vm_pu[lv].max() < eu.v_max_pu
    assert res.vm_pu[lv].min() > eu.v_min_pu
    eu.net.ext_grid["vm_pu"] = 1.05
    try:
        high = run_power_flow(eu, p, q, slot=0)
    finally:
        eu.net.ext_grid["vm_pu"] = 1.0
    assert high.vm_pu[lv][:, 2].max() > 1.05  # phase c rises above the source voltage
    assert high.vm_pu[lv][:, 2].max() > eu.v_max_pu


def test_large_feeder_many_homes_per_node_phase():
    f = build_feeder("large", n_homes=1500, seed=3)
    assert f.n_homes == 1500
    counts = f.homes.phase.value_counts()
    assert counts["a"] > counts["b"] > counts["c"]
    assert f.sites.n_homes.max() >= 5  # many homes per node-phase
    assert f.sites.n_homes.nunique() > 3  # unequal
    _check_zones(f, 5)
    assert (f.net.line[["r0_ohm_per_km", "x0_ohm_per_km"]] > 0).all().all()
    p = f.site_totals(f.homes.p_kw.to_numpy())
    q = f.site_totals(f.homes.q_kvar.to_numpy())
    res = run_power_flow(f, p, q)
    assert res.vm_pu.min() > 0.9
    # phase imbalance shows in the substation power
    assert res.p_sub_kw[0] > res.p_sub_kw[2]


def test_zone_limit_respected_for_big_phase():
    f = build_feeder("large", n_homes=2000, target_group_size=160, min_group_size=100)
    assert f.zones.n_homes.max() <= MAX_GROUP_SIZE
    _check_zones(f, 100)


def test_unknown_feeder_lists_valid_names():
    with pytest.raises(GridModelError, match="unknown feeder 'ieee13'.*small.*ieee_eu_lv.*large"):
        build_feeder("ieee13")


def test_bad_feeder_options():
    with pytest.raises(GridModelError, match="fewer than min_group_size"):
        build_feeder("small", min_group_size=6)
    with pytest.raises(GridModelError, match="n_homes"):
        build_feeder("large", n_homes=5)
    with pytest.raises(GridModelError, match="min_group_size"):
        build_feeder("small", min_group_size=200)
    with pytest.raises(GridModelError, match="unexpected keyword"):
        build_feeder("small", colour="red")
