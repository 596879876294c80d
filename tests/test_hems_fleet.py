"""HEMS fleet: ranges, dispatch under caps, comfort, energy balance, policy quality."""

from __future__ import annotations

import numpy as np
import pytest

from sim.hems import CAP_TOL_KW, FleetConfig, HEMSFleet, HEMSStateError, sample_prices
from sim.hems.baselines import compare_policies

TOL = 1e-6


@pytest.fixture(scope="module")
def fleet() -> HEMSFleet:
    f = HEMSFleet(
        FleetConfig(seed=7, n_homes=12, smart_share=0.75, start_day=20, battery_export=True)
    )
    f.train()
    return f


@pytest.fixture(scope="module")
def prices(fleet) -> np.ndarray:
    cfg = fleet.config
    return sample_prices(
        np.random.default_rng(11), cfg.price_forecast_usd_per_kwh, cfg.price_noise, 1, cfg.slot_s
    )[0]


def run_day_with_random_caps(fleet: HEMSFleet, prices: np.ndarray, seed: int) -> None:
    """Random band around the price, random lambda, caps anywhere in [Lmin, Lmax]."""
    rng = np.random.default_rng(seed)
    fleet.reset()
    for t in range(fleet.n_slots):
        p = prices[t]
        lo, hi = p * rng.uniform(0.5, 1.0), p * rng.uniform(1.0, 2.0)
        lmin, lmax = fleet.compute_ranges(t, lo, hi)
        lam = rng.uniform(0, 1, fleet.n_homes)
        fleet.dispatch(t, lam * lmax + (1 - lam) * lmin)


def test_smart_share_and_ordinary_homes(fleet):
    assert fleet.smart.sum() == 9
    fleet.reset()
    lmin, lmax = fleet.compute_ranges(0, 0.05, 0.4)
    ordinary = ~fleet.smart
    np.testing.assert_array_equal(lmin[ordinary], lmax[ordinary])
    np.testing.assert_allclose(lmin[ordinary], fleet.load_kw[ordinary, 0])
    assert np.all(fleet.pv_kw[ordinary] == 0)
    imp = fleet.dispatch(0, lmax)
    np.testing.assert_allclose(imp[ordinary], fleet.load_kw[ordinary, 0])


def test_same_seed_same_fleet(fleet):
    other = HEMSFleet(
        FleetConfig(seed=7, n_homes=12, smart_share=0.75, start_day=20, battery_export=True)
    )
    np.testing.assert_array_equal(other.load_kw, fleet.load_kw)
    np.testing.assert_array_equal(other.occupancy, fleet.occupancy)
    np.testing.assert_array_equal(other.params.bat_kwh, fleet.params.bat_kwh)
    np.testing.assert_array_equal(other.draw_l, fleet.draw_l)


def test_price_response_is_monotone_and_lmin_below_lmax(fleet, prices):
    fleet.reset()
    rng = np.random.default_rng(2)
    grid = np.linspace(0.0, 0.6, 13)
    for t in range(fleet.n_slots):
        if t % 6 == 0:
            last_min = last_max = None
            for p in grid:  # raise both prices together
                lmin, lmax = fleet.compute_ranges(t, p, p + 0.1)
                assert np.all(lmin <= lmax + 1e-12)
                if last_min is not None:
                    assert np.all(lmin <= last_min + 1e-9)
                    assert np.all(lmax <= last_max + 1e-9)
                last_min, last_max = lmin, lmax
            lo = rng.uniform(0, 0.5, fleet.n_homes)
            lmin, lmax = fleet.compute_ranges(t, lo, lo + rng.uniform(0, 0.5, fleet.n_homes))
            assert np.all(lmin <= lmax + 1e-12)
        _, lmax = fleet.compute_ranges(t, prices[t], prices[t])
        fleet.dispatch(t, lmax)


@pytest.mark.parametrize("seed", [0, 1])
def test_caps_at_or_above_lmin_keep_comfort_limits_and_cap(fleet, prices, seed):
    run_day_with_random_caps(fleet, prices, seed)
    rec = fleet.records
    si = fleet.smart_idx
    p = fleet.params
    assert np.nanmax(rec["comfort_violation_c"]) <= TOL
    assert np.all(rec["t_in_c"][si] >= p.t_low_c[:, None] - TOL)
    assert np.all(rec["t_in_c"][si] <= p.t_high_c[:, None] + TOL)
    assert np.all(rec["tank_c"][si] >= p.tank_low_c[:, None] - TOL)
    assert np.all(rec["tank_c"][si] <= p.tank_high_c[:, None] + TOL)
    assert np.all(rec["soc_kwh"][si] >= p.e_min_kwh[:, None] - 1e-9)
    assert np.all(rec["soc_kwh"][si] <= p.e_max_kwh[:, None] + 1e-9)
    assert np.all(rec["import_kw"] <= rec["cap_kw"] + CAP_TOL_KW)
    assert np.all(rec["cap_violation_kw"] <= CAP_TOL_KW)
    # the dispatch plans at p_low, where the home wants Lmax >= cap: it uses its full cap
    np.testing.assert_allclose(rec["import_kw"], rec["cap_kw"], atol=1e-6)
    assert np.all(np.abs(rec["battery_kw"][si]) <= p.bat_kw[:, None] + 1e-9)
    assert np.all((rec["hvac_kw"][si] >= 0) & (rec["hvac_kw"][si] <= p.hvac_kw[:, None] + 1e-9))
    assert np.all((rec["wh_kw"][si] >= 0) & (rec["wh_kw"][si] <= p.wh_kw[:, None] + 1e-9))


def test_energy_balance_every_home_every_slot(fleet, prices):
    run_day_with_random_caps(fleet, prices, 5)
    rec = fleet.records
    si = fleet.smart_idx
    p = fleet.params
    dt = fleet.dt_h
    bat = np.nan_to_num(rec["battery_kw"])
    flex = np.nan_to_num(rec["hvac_kw"]) + np.nan_to_num(rec["wh_kw"])
    charge, discharge = np.maximum(bat, 0), np.maximum(-bat, 0)
    # PV + import = loads + battery charge - discharge
    lhs = rec["pv_kw"] + rec["import_kw"]
    rhs = rec["load_kw"] + flex + charge - discharge
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)
    # stored energy follows the battery power with the efficiencies
    soc = np.concatenate([fleet.e0_kwh[:, None], rec["soc_kwh"][si]], axis=1)
    d_soc = np.diff(soc, axis=1)
    eta = p.bat_eff[:, None]
    np.testing.assert_allclose(d_soc, dt * (eta * charge[si] - discharge[si] / eta), atol=1e-9)
    # reactive power from the power factor of load + HVAC
    q_expected = (rec["load_kw"] + np.nan_to_num(rec["hvac_kw"])) * np.tan(
        np.arccos(fleet.power_factor)
    )[:, None]
    np.testing.assert_allclose(rec["q_kvar"], q_expected, atol=1e-12)


def test_cap_below_lmin_respects_cap_and_reports_violations(fleet, prices):
    fleet.reset()
    for t in range(40):
        lmin, lmax = fleet.compute_ranges(t, prices[t], prices[t])
        fleet.dispatch(t, lmax)
    t = 40
    lmin, _ = fleet.compute_ranges(t, prices[t], 2 * prices[t])
    si = fleet.smart_idx
    dis_max = np.minimum(
        fleet.params.bat_kw,
        (fleet.soc_kwh - fleet.params.e_min_kwh) * fleet.params.bat_eff / fleet.dt_h,
    )
    floor = fleet.base_kw(t)
    floor[si] -= dis_max
    cap = np.full(fleet.n_homes, -50.0)  # unreachable: forces maximum shedding
    imp = fleet.dispatch(t, cap)
    rec = fleet.records
    np.testing.assert_allclose(imp, floor, atol=1e-9)  # all flexible load shed, full discharge
    np.testing.assert_allclose(rec["cap_violation_kw"][:, t], imp - cap)
    assert np.all(rec["hvac_kw"][si, t] == 0) and np.all(rec["wh_kw"][si, t] == 0)
    # a cap between the floor and Lmin is met exactly where reachable
    t += 1
    lmin, _ = fleet.compute_ranges(t, prices[t], prices[t])
    floor = fleet.base_kw(t)
    floor[si] -= np.minimum(
        fleet.params.bat_kw,
        (fleet.soc_kwh - fleet.params.e_min_kwh) * fleet.params.bat_eff / fleet.dt_h,
    )
    cap = 0.5 * (floor + lmin)
    imp = fleet.dispatch(t, cap)
    assert np.all(imp <= cap + CAP_TOL_KW)


def test_slot_order_is_enforced(fleet):
    fleet.reset()
    with pytest.raises(HEMSStateError):
        fleet.compute_ranges(3, 0.1, 0.2)
    with pytest.raises(HEMSStateError):
        fleet.dispatch(0, np.zeros(fleet.n_homes))  # no band and no price
    fleet.compute_ranges(0, 0.1, 0.2)
    fleet.dispatch(0, np.full(fleet.n_homes, 100.0))
    with pytest.raises(HEMSStateError):
        fleet.dispatch(0, np.full(fleet.n_homes, 100.0))


def test_occupancy_ground_truth(fleet):
    occ = fleet.occupancy
    assert occ.shape == (fleet.n_homes, fleet.n_slots)
    assert np.all(occ >= 0)
    assert np.all(occ <= fleet.n_occupants[:, None])
    assert np.all(occ.max(axis=1) > 0)  # everybody is active at some point of the day
    # hot-water draws only happen while someone is active
    assert np.all(fleet.draw_l[occ == 0] == 0)


def test_adp_beats_myopic_and_is_bounded_by_perfect_foresight(fleet, prices):
    res = compare_policies(fleet, prices)
    adp, myopic, perfect = res["adp"], res["myopic"], res["perfect"]
    assert res["adp_max_violation_c"].max() <= TOL
    assert res["myopic_max_violation_c"].max() <= TOL
    # the LP optimum is a lower bound of any feasible policy with the same data
    assert np.all(perfect <= adp + 1e-6)
    assert np.all(perfect <= myopic + 1e-6)
    assert adp.sum() <= myopic.sum()
    gap = (adp.sum() - perfect.sum()) / abs(perfect.sum())
    captured = (myopic.sum() - adp.sum()) / (myopic.sum() - perfect.sum())
    print(
        f"\nADP {adp.sum():.2f} $, myopic {myopic.sum():.2f} $, perfect {perfect.sum():.2f} $;"
        f" gap to perfect foresight {100 * gap:.1f} %, {100 * captured:.0f} % of the "
        "myopic-to-perfect saving captured"
    )
    assert captured > 0.5


def test_two_days_retrain_daily_and_keep_comfort():
    f = HEMSFleet(
        FleetConfig(
            seed=4, n_homes=3, smart_share=1.0, n_days=2, start_day=100, battery_export=True
        )
    )
    rng = np.random.default_rng(0)
    for t in range(f.n_slots):
        lmin, lmax = f.compute_ranges(t, 0.1, 0.25)
        lam = rng.uniform(0, 1)
        f.dispatch(t, lam * lmax + (1 - lam) * lmin)
    assert f._trained_day == 1
    assert np.nanmax(f.records["comfort_violation_c"]) <= TOL
    assert np.all(f.records["import_kw"] <= f.records["cap_kw"] + CAP_TOL_KW)
    assert not np.any(np.isnan(f.records["import_kw"]))


def test_no_smart_homes():
    f = HEMSFleet(FleetConfig(seed=2, n_homes=3, smart_share=0.0, battery_export=True))
    lmin, lmax = f.compute_ranges(0, 0.1, 0.2)
    np.testing.assert_array_equal(lmin, f.load_kw[:, 0])
    np.testing.assert_array_equal(lmax, f.load_kw[:, 0])
    np.testing.assert_array_equal(f.dispatch(0, lmin), f.load_kw[:, 0])


def test_ranges_for_1000_homes_in_one_vectorized_call():
    """One call evaluates every home (benchmarks/hems.py times it; no timing asserted here)."""
    f = HEMSFleet(
        FleetConfig(
            seed=2, n_homes=1000, smart_share=1.0, load_profile_pool=3, battery_export=True
        ),
        policy="myopic",
    )
    lmin, lmax = f.compute_ranges(0, 0.1, 0.2)
    assert lmin.shape == lmax.shape == (1000,)
    assert np.all(np.isfinite(lmin)) and np.all(lmin <= lmax + 1e-12)


def test_summer_cooling_day_caps_keep_comfort():
    f = HEMSFleet(
        FleetConfig(seed=9, n_homes=5, smart_share=1.0, start_day=196, battery_export=True)
    )
    prices = sample_prices(
        np.random.default_rng(1), f.config.price_forecast_usd_per_kwh, 0.15, 1, f.config.slot_s
    )[0]
    run_day_with_random_caps(f, prices, 3)
    rec = f.records
    assert np.mean(f.mode < 0) > 0.7  # a July day in North Carolina: mostly cooling
    assert np.nanmax(rec["comfort_violation_c"]) == 0.0
    assert np.all(rec["import_kw"] <= rec["cap_kw"] + CAP_TOL_KW)
    assert np.nanmin(rec["import_kw"]) < 0  # PV export around noon


@pytest.fixture(scope="module")
def summer_no_export() -> HEMSFleet:
    f = HEMSFleet(FleetConfig(seed=3, n_homes=8, start_day=196, battery_export=False))
    f.train()
    return f


def test_battery_never_exports_when_forbidden(summer_no_export, prices):
    fleet = summer_no_export
    rng = np.random.default_rng(2)
    fleet.reset()
    for t in range(fleet.n_slots):
        # p_high up to 10x the price: the battery would discharge fully if it could export
        lmin, lmax = fleet.compute_ranges(t, prices[t], prices[t] * rng.uniform(1.0, 10.0))
        lam = rng.uniform(0, 1, fleet.n_homes)
        fleet.dispatch(t, lam * lmax + (1 - lam) * lmin)
    rec = fleet.records
    si = fleet.smart_idx
    discharge = np.maximum(-np.nan_to_num(rec["battery_kw"][si]), 0.0)
    own_net_load = np.maximum(rec["load_kw"][si] - rec["pv_kw"][si], 0.0)
    assert discharge.max() > 0.1, "the battery never discharged: the test would be vacuous"
    assert np.all(discharge <= own_net_load + 1e-9)


def test_pv_is_curtailed_at_negative_price_only_and_within_a_cap(summer_no_export):
    fleet = summer_no_export
    fleet.reset()
    noon = fleet.slots_per_day // 2
    for t in range(noon):  # run the morning uncapped at a positive price
        _, lmax = fleet.compute_ranges(t, 0.1, 0.1)
        fleet.dispatch(t, lmax)
    si = fleet.smart_idx
    pv = fleet.pv_kw[si, noon]
    assert pv.min() > 0.5, "no PV at noon: the test would be vacuous"
    _, lmax_pos = fleet.compute_ranges(noon, 0.0, 0.2)
    _, lmax_neg = fleet.compute_ranges(noon, -0.5, 0.2)
    # at a negative price each home also takes back its whole PV output
    np.testing.assert_allclose(lmax_neg[si] - lmax_pos[si], pv, atol=1e-9)
    # capped halfway, the home curtails only what the cap leaves room for
    cap = 0.5 * (lmax_pos + lmax_neg)
    imp = fleet.dispatch(noon, cap)
    curtailed = fleet.records["pv_curtailed_kw"][si, noon]
    np.testing.assert_allclose(imp[si], cap[si], atol=CAP_TOL_KW)
    assert np.all((curtailed > 0) & (curtailed < pv))
    np.testing.assert_allclose(fleet.records["pv_kw"][si, noon], pv - curtailed)


def test_dispatch_at_a_five_point_bid_runs_the_bid_and_keeps_comfort(fleet, prices):
    """dispatch_bid: each home's import and reactive power are its bid's points walked to
    lambda (computed here from the points); above the shed point (lambda >= 1/4) comfort and
    battery limits hold all day."""
    from sim.protocol import bid_prices, dispatch_cap

    rng = np.random.default_rng(5)
    fleet.reset()
    smart = fleet.smart
    for t in range(fleet.n_slots):
        p = prices[t]
        ladder = bid_prices(
            np.full(fleet.n_homes, 0.7 * p), np.full(fleet.n_homes, 1.4 * p), "group"
        )
        points = fleet.compute_points(t, ladder, shed_last=True)
        q_points = fleet.points_q_kvar.copy()
        lam = rng.uniform(0.25, 1, fleet.n_homes)
        imp = fleet.dispatch_bid(t, lam)
        np.testing.assert_allclose(imp[smart], dispatch_cap(lam, points)[smart], atol=1e-9)
        np.testing.assert_allclose(
            fleet.last_q_kvar[smart], dispatch_cap(lam, q_points)[smart], atol=1e-9
        )
    rec = fleet.records
    assert np.nanmax(rec["comfort_violation_c"][smart]) <= TOL
    assert np.nanmax(rec["shed_kw"][smart]) <= TOL
    soc = rec["soc_kwh"][smart]
    assert np.all(soc >= fleet.params.e_min_kwh[:, None] - TOL)
    assert np.all(soc <= fleet.params.e_max_kwh[:, None] + TOL)


def test_the_shed_point_gives_up_hvac_and_water_heater_and_records_it(fleet, prices):
    """At lambda = 0 a home runs its shed point: no HVAC, no water heater, the battery as at
    +VOLL; the power given up below its least comfort-keeping point is recorded as shed."""
    from sim.protocol import bid_prices

    fleet.reset()
    smart = fleet.smart
    t = 0
    ladder = bid_prices(np.full(fleet.n_homes, 0.1), np.full(fleet.n_homes, 0.2), "group")
    points = fleet.compute_points(t, ladder, shed_last=True)
    x = fleet._point_x
    assert np.all(x["hvac"][:, -1] == 0) and np.all(x["wh"][:, -1] == 0)
    np.testing.assert_array_equal(x["bat"][:, -1], x["bat"][:, -2])
    least = x["hvac"][:, :-1].min(axis=1) + x["wh"][:, :-1].min(axis=1)
    imp = fleet.dispatch_bid(t, 0.0)
    np.testing.assert_allclose(imp[smart], points[smart, -1], atol=1e-9)
    np.testing.assert_allclose(fleet.records["shed_kw"][smart, t], least, atol=1e-9)


def test_dispatch_bid_needs_the_slots_points(fleet):
    fleet.reset()
    with pytest.raises(HEMSStateError, match="compute_points"):
        fleet.dispatch_bid(0, 0.5)
