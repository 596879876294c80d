"""Benchmarks for the ADP policy: perfect-foresight LP and policy comparison.

``perfect_foresight_costs`` solves, per smart home, one LP over the whole
horizon with the same data, dynamics, prices and cost as the simulation
(cvxpy + HiGHS): known prices, loads, PV, gains and draws for every slot::

    min  sum_t p_t dt L_t + c_deg dt (ch_t + dis_t) + pi_T * max(e_0 - e_T, 0)
         + P * (comfort slack)
    L_t = load_t - pv_t + ch_t - dis_t + x_hvac_t + x_wh_t
    e_{t+1} = e_t + dt (eta ch_t - dis_t / eta),   e in [e_min, e_max]
    T_{t+1} = a T_t + (1 - a)(T_out_t + R (Q_t + s_t COP x_hvac_t))
    W_{t+1} = (1 - f_t) W_t + f_t T_mains + dt (x_wh_t - UA (W_t - T_amb)) / C_w

``compare_policies`` runs the ADP and the myopic policy on the same fleet and
day with known per-slot prices (no binding cap) and returns per-home costs
with the LP optimum.
"""

from __future__ import annotations

import numpy as np

from .appliances import T_AMBIENT_TANK_C, T_MAINS_C, WATER_KWH_PER_L_C
from .fleet import HEMSFleet
from .policy import COMFORT_PENALTY_USD_PER_C

__all__ = ["perfect_foresight_costs", "compare_policies"]


def perfect_foresight_costs(
    fleet: HEMSFleet, prices: np.ndarray, homes: np.ndarray | None = None
) -> np.ndarray:
    """Optimal cost ($) over the fleet's horizon for smart homes ``homes``
    (indices into the fleet's smart homes; default all) with known prices (n_slots,)."""
    import cvxpy as cp

    p = fleet.params
    dt = fleet.dt_h
    n = fleet.n_slots
    prices = np.asarray(prices, dtype=float)
    if prices.shape != (n,):
        raise ValueError(f"prices must have shape ({n},)")
    homes = np.arange(p.n) if homes is None else np.asarray(homes)
    deg = fleet.config.battery_degradation_usd_per_kwh
    out = np.empty(len(homes))
    for j, k in enumerate(homes):
        i = fleet.smart_idx[k]
        eta = p.bat_eff[k]
        a = np.exp(-dt / (p.r_c_per_kw[k] * p.c_kwh_per_c[k]))
        r = p.r_c_per_kw[k]
        cw = p.tank_l[k] * WATER_KWH_PER_L_C
        f = np.clip(fleet.draw_l[i] / p.tank_l[k], 0.0, 1.0)
        ch, dis = cp.Variable(n, nonneg=True), cp.Variable(n, nonneg=True)
        xh, xw = cp.Variable(n, nonneg=True), cp.Variable(n, nonneg=True)
        e, tin, tw = cp.Variable(n + 1), cp.Variable(n + 1), cp.Variable(n + 1)
        slack = cp.Variable(2 * n, nonneg=True)
        short = cp.Variable(nonneg=True)
        load = fleet.load_kw[i] - fleet.pv_kw[i] + ch - dis + xh + xw
        mode_cop = fleet.mode[k] * p.hvac_cop[k]
        cons = [
            ch <= p.bat_kw[k],
            dis <= p.bat_kw[k],
            xh <= p.hvac_kw[k],
            xw <= p.wh_kw[k],
            e[0] == fleet.e0_kwh[k],
            tin[0] == 0.5 * (p.t_low_c[k] + p.t_high_c[k]),
            tw[0] == 0.5 * (p.tank_low_c[k] + p.tank_high_c[k]),
            e[1:] == e[:-1] + dt * (eta * ch - dis / eta),
            e >= p.e_min_kwh[k],
            e <= p.e_max_kwh[k],
            tin[1:]
            == a * tin[:-1]
            + (1 - a) * (fleet.t_out_c + r * (fleet.gain_kw[k] + cp.multiply(mode_cop, xh))),
            tw[1:]
            == cp.multiply(1 - f, tw[:-1])
            + f * T_MAINS_C
            + dt * (xw - p.wh_ua_kw_per_c[k] * (tw[:-1] - T_AMBIENT_TANK_C)) / cw,
            tin[1:] >= p.t_low_c[k] - slack[:n],
            tin[1:] <= p.t_high_c[k] + slack[:n],
            tw[1:] >= p.tank_low_c[k] - slack[n:],
            tw[1:] <= p.tank_high_c[k] + slack[n:],
            short >= fleet.e0_kwh[k] - e[n],
        ]
        cost = (
            dt * prices @ load
            + deg * dt * cp.sum(ch + dis)
            + fleet.terminal_usd_per_kwh[k] * short
            + COMFORT_PENALTY_USD_PER_C * 100 * cp.sum(slack)
        )
        prob = cp.Problem(cp.Minimize(cost), cons)
        prob.solve(solver=cp.HIGHS)
        if prob.status != cp.OPTIMAL:
            raise RuntimeError(f"perfect-foresight LP for smart home {k}: {prob.status}")
        out[j] = prob.value
    return out


def compare_policies(
    fleet: HEMSFleet,
    prices: np.ndarray,
    pf_homes: int | None = None,
) -> dict[str, np.ndarray]:
    """Per smart home daily cost ($) of ADP, myopic and perfect foresight.

    The fleet is reset and run twice with the known prices; ``pf_homes`` limits
    the LP to the first so many smart homes (the LP is per home and slower).
    Also returns the worst comfort violations (degC) of both runs.
    """
    si = fleet.smart_idx
    res: dict[str, np.ndarray] = {}
    for name in ("adp", "myopic"):
        fleet.reset()
        fleet.use_policy(name)
        fleet.run_prices(prices)
        res[name] = fleet.daily_cost()[si]
        res[f"{name}_max_violation_c"] = np.nanmax(fleet.records["comfort_violation_c"][si], axis=1)
    fleet.reset()
    fleet.use_policy("adp")
    m = len(si) if pf_homes is None else min(pf_homes, len(si))
    res["perfect"] = perfect_foresight_costs(fleet, prices, np.arange(m))
    return res
