"""HEMS configuration validation, data sources and appliance physics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim.hems import FleetConfig, HEMSConfigError, HEMSFleet, Weather, load_weather
from sim.hems.appliances import (
    T_AMBIENT_TANK_C,
    T_MAINS_C,
    WATER_KWH_PER_L_C,
    battery_candidates,
    battery_step,
    hvac_candidates,
    hvac_step,
    sample_params,
    wh_candidates,
    wh_step,
)
from sim.hems.config import ApplianceRanges, Range
from sim.hems.data import household_days
from sim.hems.policy import state_nodes

DT = 0.25


@pytest.fixture(scope="module")
def params():
    return sample_params(np.random.default_rng(0), 6, FleetConfig())


# ------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"ranges": {"battery_kwh": [-5.0, 10.0]}}, "ranges.battery_kwh"),
        ({"ranges": {"battery_kw": [3.0, 2.0]}}, "ranges.battery_kw"),
        ({"ranges": {"t_halfband_c": [-1.0, 1.0]}}, "ranges.t_halfband_c"),
        (
            {"ranges": {"tank_low_c": [58.0, 60.0], "tank_high_c": [50.0, 55.0]}},
            "ranges.tank_low_c",
        ),
        ({"ranges": {"hvac_cop": [float("nan"), 3.0]}}, "ranges.hvac_cop.lo"),
        ({"ranges": {"battery_size": [1, 2]}}, "ranges.battery_size"),
        ({"smart_share": 1.5}, "smart_share"),
        ({"slot_s": 700}, "slot_s"),
        ({"n_homes": 0}, "n_homes"),
        ({"soc_min": 0.9, "soc_max": 0.5}, "soc_min"),
        ({"price_forecast_usd_per_kwh": [0.1] * 23}, "price_forecast_usd_per_kwh"),
        ({"start_day": 365, "n_days": 2}, "n_days"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_is_refused_naming_the_parameter(kwargs, param):
    with pytest.raises(HEMSConfigError) as err:
        FleetConfig.from_dict(kwargs)
    assert err.value.param == param
    assert param in str(err.value)


def test_inverted_range_and_comfort_band_are_refused():
    with pytest.raises(HEMSConfigError, match="inverted"):
        ApplianceRanges(t_set_c=Range(23.0, 21.0))
    p = sample_params(np.random.default_rng(0), 3, FleetConfig())
    fields = vars(p).copy()
    fields["t_low_c"], fields["t_high_c"] = p.t_high_c, p.t_low_c
    with pytest.raises(HEMSConfigError, match="params.t_low_c"):
        type(p)(**fields)


def test_nan_weather_is_refused():
    w = load_weather("723170TYA.CSV", 20, 1, 900)
    bad = w.temp_out_c.copy()
    bad[10] = np.nan
    with pytest.raises(HEMSConfigError) as err:
        Weather(900, bad, w.ghi_w_m2, w.pv_kw_per_kwp)
    assert err.value.param == "weather.temp_out_c"
    bad_pv = w.pv_kw_per_kwp.copy()
    bad_pv[0, 40] = np.nan
    with pytest.raises(HEMSConfigError, match="weather.pv_kw_per_kwp"):
        Weather(900, w.temp_out_c, w.ghi_w_m2, bad_pv)


def test_fleet_refuses_mismatched_weather():
    w = load_weather("723170TYA.CSV", 20, 1, 900)
    with pytest.raises(HEMSConfigError, match="weather"):
        HEMSFleet(FleetConfig(n_homes=2, n_days=2, start_day=20, battery_export=True), weather=w)


def test_unknown_weather_file_is_refused():
    with pytest.raises(HEMSConfigError, match="weather_file"):
        load_weather("nope.csv", 20, 1, 900)


# ------------------------------------------------------------ data
def test_tmy3_weather_and_pv_are_plausible():
    summer = load_weather("723170TYA.CSV", 196, 1, 900)
    winter = load_weather("723170TYA.CSV", 20, 1, 900)
    assert summer.n_slots == 96
    assert summer.temp_out_c.mean() > winter.temp_out_c.mean() + 10
    pv = summer.pv_kw_per_kwp
    assert np.all(pv[:, :16] == 0) and np.all(pv[:, -8:] == 0)  # night: before 4 h, after 22 h
    kwh_per_kwp = pv.sum(axis=1) * 0.25
    assert np.all((kwh_per_kwp > 1.0) & (kwh_per_kwp < 8.0))
    assert np.all(pv <= 1.0 / 1.2 + 1e-12)


def test_richardsonpy_household_is_seeded_and_restores_global_random():
    w = load_weather("723170TYA.CSV", 20, 1, 900)
    random.seed(123)
    before = random.random()
    random.seed(123)
    a_load, a_occ = household_days(5, 3, 20, 1, w.ghi_w_m2, 900)
    assert random.random() == before
    b_load, b_occ = household_days(5, 3, 20, 1, w.ghi_w_m2, 900)
    c_load, _ = household_days(6, 3, 20, 1, w.ghi_w_m2, 900)
    np.testing.assert_array_equal(a_load, b_load)
    np.testing.assert_array_equal(a_occ, b_occ)
    assert not np.array_equal(a_load, c_load)
    assert a_load.shape == a_occ.shape == (96,)
    assert np.all(a_load >= 0) and 1.0 < a_load.sum() * 0.25 < 40.0
    assert np.all((a_occ >= 0) & (a_occ <= 3))


# ------------------------------------------------------------ physics
def test_battery_efficiency_and_limits(params):
    p = params
    e = 0.5 * (p.e_min_kwh + p.e_max_kwh)
    x = np.full(p.n, 2.0)
    np.testing.assert_allclose(battery_step(p, e, x, DT) - e, DT * p.bat_eff * 2.0)
    np.testing.assert_allclose(battery_step(p, e, -x, DT) - e, -DT * 2.0 / p.bat_eff)
    x_c, e_next, _, _, valid = battery_candidates(p, e, state_nodes(p, 11)["bat"], DT, 0.02)
    assert np.all(np.abs(x_c[valid]) <= np.repeat(p.bat_kw[:, None], x_c.shape[1], 1)[valid] + 1e-9)
    assert np.all(e_next >= p.e_min_kwh[:, None] - 1e-12)
    assert np.all(e_next <= p.e_max_kwh[:, None] + 1e-12)


def test_house_rc_model_matches_analytic_solution(params):
    p = params
    t0 = np.full(p.n, 20.0)
    t_out, gain, x, mode = 30.0, np.full(p.n, 0.5), np.full(p.n, 1.0), -np.ones(p.n)
    # constant inputs: T(t) = T_ss + (T0 - T_ss) exp(-t / RC)
    t_ss = t_out + p.r_c_per_kw * (gain + mode * p.hvac_cop * x)
    temp = t0
    for _ in range(8):
        temp = hvac_step(p, temp, t_out, gain, mode, x, DT)
    expected = t_ss + (t0 - t_ss) * np.exp(-8 * DT / (p.r_c_per_kw * p.c_kwh_per_c))
    np.testing.assert_allclose(temp, expected, rtol=1e-12)


def test_water_heater_energy_balance(params):
    p = params
    tw = np.full(p.n, 55.0)
    draw = np.full(p.n, 20.0)
    x = np.full(p.n, 2.0)
    nxt = wh_step(p, tw, draw, x, DT)
    cw = p.tank_l * WATER_KWH_PER_L_C
    stored = cw * (nxt - tw)
    element = x * DT
    losses = p.wh_ua_kw_per_c * (tw - T_AMBIENT_TANK_C) * DT
    drawn = draw * WATER_KWH_PER_L_C * (tw - T_MAINS_C)
    np.testing.assert_allclose(stored, element - losses - drawn, rtol=1e-12, atol=1e-12)


def test_one_step_candidates_are_exact_for_piecewise_linear_values(params):
    """The best candidate equals the best of a dense grid of continuous powers."""
    p = params
    rng = np.random.default_rng(3)
    nodes = state_nodes(p, 9)["hvac"]
    v_nodes = rng.uniform(0, 2, nodes.shape)
    t_in = 0.5 * (p.t_low_c + p.t_high_c)
    gain = np.full(p.n, 0.4)
    mode = -np.ones(p.n)
    price = 0.2
    x, nxt, viol, _, valid = hvac_candidates(p, t_in, 28.0, gain, mode, nodes, DT)
    dense = p.hvac_kw[:, None] * np.linspace(0.0, 1.0, 20001)
    t_dense = hvac_step(p, t_in[:, None], 28.0, gain[:, None], mode[:, None], dense, DT)
    for i in range(p.n):
        ok = valid[i] & (viol[i] <= 1e-12)
        best_cand = np.min(price * DT * x[i][ok] + np.interp(nxt[i][ok], nodes[i], v_nodes[i]))
        in_band = (t_dense[i] >= p.t_low_c[i] - 1e-9) & (t_dense[i] <= p.t_high_c[i] + 1e-9)
        dense_cost = price * DT * dense[i] + np.interp(t_dense[i], nodes[i], v_nodes[i])
        best_dense = dense_cost[in_band].min()
        assert best_cand <= best_dense + 1e-9
        assert best_cand >= best_dense - 1e-3  # the dense grid is only approximately optimal


def test_water_heater_candidates_reach_band_edges(params):
    p = params
    nodes = state_nodes(p, 7)["wh"]
    tw = p.tank_low_c + 0.5
    x, nxt, viol, _, valid = wh_candidates(p, tw, np.full(p.n, 10.0), nodes, DT)
    assert np.all(np.where(valid, viol, np.inf).min(axis=1) == 0.0)
    recomputed = np.stack(
        [wh_step(p, tw, np.full(p.n, 10.0), x[:, k], DT) for k in range(x.shape[1])], axis=1
    )
    np.testing.assert_allclose(recomputed[valid], nxt[valid], atol=1e-9)
