"""The smart homes as the oracle sees them: every appliance, comfort band and input known.

`HomeData.from_fleet` reads a warmed-up `HEMSFleet` at the run's first slot: the smart homes'
parameters, their states then (SOC kWh, indoor and tank temperature degC), and per slot of the
horizon their non-controllable load, PV, internal gains, HVAC mode and hot-water draws, the
outdoor temperature and the ordinary homes' fixed load. `home_program` writes the homes'
linear program over the whole horizon in cvxpy (the models of `sim.hems.appliances`, exact,
with the fleet's own limits); `simulate` replays a dispatch through the fleet's own step
functions, so a test (and the report) can check the oracle's states against the fleet's
physics rather than against the LP's own equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from sim.hems import HEMSFleet
from sim.hems.appliances import (
    T_AMBIENT_TANK_C,
    T_MAINS_C,
    WATER_KWH_PER_L_C,
    SmartHomeParams,
    battery_step,
    hvac_step,
    wh_step,
)
from sim.hems.policy import COMFORT_PENALTY_USD_PER_C

# The oracle treats comfort as nearly hard: 100 x the HEMS's own penalty (as the fleet's
# perfect-foresight benchmark in sim.hems.baselines does), $ per degC outside a band per slot.
COMFORT_WEIGHT_USD_PER_C = 100.0 * COMFORT_PENALTY_USD_PER_C


@dataclass
class HomeData:
    """Everything the oracle knows, over the horizon's T slots (arrays (H, T) for the H smart
    homes unless stated; kW, degC, litres, $/kWh)."""

    params: SmartHomeParams
    smart_idx: np.ndarray  # (H,) fleet index of each smart home
    n_homes: int  # every home of the feeder (smart and ordinary)
    dt_h: float
    first_slot: int  # fleet slot of the horizon's first slot
    price_usd_per_kwh: np.ndarray  # (T,) scenario energy price
    load_kw: np.ndarray
    pv_kw: np.ndarray
    gain_kw: np.ndarray
    mode: np.ndarray  # +1 heat, -1 cool
    draw_l: np.ndarray
    t_out_c: np.ndarray  # (T,)
    max_discharge_kw: np.ndarray  # battery discharge limit (kW): power, and no export
    soc0_kwh: np.ndarray  # (H,) states at the start of the horizon
    t_in0_c: np.ndarray
    tank0_c: np.ndarray
    terminal_usd_per_kwh: np.ndarray  # (H,) value of SOC below soc0 at the end
    degradation_usd_per_kwh: float
    fixed_kw: np.ndarray  # (n_homes, T) every home's import when nothing is controlled
    q_fixed_kvar: np.ndarray  # (n_homes, T) reactive power of the non-controllable load
    tan_phi: np.ndarray  # (n_homes,) tan(acos power factor)

    @property
    def n_smart(self) -> int:
        return len(self.smart_idx)

    @property
    def n_slots(self) -> int:
        return len(self.t_out_c)

    @classmethod
    def from_fleet(cls, fleet: HEMSFleet, prices_usd_per_kwh: np.ndarray) -> HomeData:
        """The fleet's homes over T = len(`prices_usd_per_kwh`) slots from its current slot;
        the prices ($/kWh) are the scenario's energy price per slot of that horizon."""
        s0 = fleet.slot
        prices = np.asarray(prices_usd_per_kwh, dtype=float)
        if prices.ndim != 1 or not 0 < len(prices) <= fleet.n_slots - s0:
            raise ValueError(f"prices: need 1..{fleet.n_slots - s0} slots, got {prices.shape}")
        span = slice(s0, s0 + len(prices))
        si = fleet.smart_idx
        p = fleet.params
        load, pv = fleet.load_kw[si, span], fleet.pv_kw[si, span]
        dis = np.broadcast_to(p.bat_kw[:, None], load.shape)
        if not fleet.config.battery_export:  # as the fleet: at most the home's own load - PV
            dis = np.minimum(dis, np.maximum(load - pv, 0.0))
        tan_phi = np.tan(np.arccos(fleet.power_factor))
        return cls(
            params=p,
            smart_idx=si.copy(),
            n_homes=fleet.n_homes,
            dt_h=fleet.dt_h,
            first_slot=s0,
            price_usd_per_kwh=prices,
            load_kw=load.copy(),
            pv_kw=pv.copy(),
            gain_kw=fleet.gain_kw[:, span].copy(),
            mode=fleet.mode[:, span].copy(),
            draw_l=fleet.draw_l[si, span].copy(),
            t_out_c=np.asarray(fleet.t_out_c[span], dtype=float).copy(),
            max_discharge_kw=np.array(dis),
            soc0_kwh=fleet.soc_kwh.copy(),
            t_in0_c=fleet.t_in_c.copy(),
            tank0_c=fleet.tank_c.copy(),
            terminal_usd_per_kwh=np.asarray(fleet.terminal_usd_per_kwh, dtype=float).copy(),
            degradation_usd_per_kwh=fleet.config.battery_degradation_usd_per_kwh,
            fixed_kw=(fleet.load_kw[:, span] - fleet.pv_kw[:, span]).copy(),
            q_fixed_kvar=fleet.load_kw[:, span] * tan_phi[:, None],
            tan_phi=tan_phi,
        )


@dataclass
class HomeProgram:
    """The cvxpy variables (H, T) and expressions of the homes' program."""

    charge: cp.Variable  # kW, >= 0
    discharge: cp.Variable  # kW, >= 0
    hvac: cp.Variable  # kW
    wh: cp.Variable  # kW
    curtail: cp.Variable  # kW of PV curtailed
    soc: cp.Variable  # (H, T+1) kWh
    t_in: cp.Variable  # (H, T+1) degC
    tank: cp.Variable  # (H, T+1) degC
    comfort_slack: cp.Variable  # (H, T) degC outside the comfort band (house + tank)
    shortfall: cp.Variable  # (H,) kWh of SOC below the start at the end
    import_kw: cp.Expression  # (H, T) net import
    q_kvar: cp.Expression  # (H, T) reactive power
    constraints: list
    energy_usd: cp.Expression
    other_usd: cp.Expression  # degradation + terminal shortfall
    comfort_usd: cp.Expression


def home_program(d: HomeData) -> HomeProgram:
    """The smart homes' linear program over the horizon (see the module docstring)."""
    p, dt = d.params, d.dt_h
    h, t = d.n_smart, d.n_slots
    shape = (h, t)
    col = lambda v: np.asarray(v, dtype=float)[:, None]  # noqa: E731
    ch = cp.Variable(shape, nonneg=True, name="charge_kw")
    dis = cp.Variable(shape, nonneg=True, name="discharge_kw")
    xh = cp.Variable(shape, nonneg=True, name="hvac_kw")
    xw = cp.Variable(shape, nonneg=True, name="wh_kw")
    cur = cp.Variable(shape, nonneg=True, name="curtail_kw")
    soc = cp.Variable((h, t + 1), name="soc_kwh")
    t_in = cp.Variable((h, t + 1), name="t_in_c")
    tank = cp.Variable((h, t + 1), name="tank_c")
    s_t = cp.Variable(shape, nonneg=True, name="comfort_house_c")
    s_w = cp.Variable(shape, nonneg=True, name="comfort_tank_c")
    short = cp.Variable(h, nonneg=True, name="soc_shortfall_kwh")
    eta = col(p.bat_eff)
    a = np.exp(-dt / (p.r_c_per_kw * p.c_kwh_per_c))[:, None]
    r = col(p.r_c_per_kw)
    vol = col(p.tank_l)
    cw = vol * WATER_KWH_PER_L_C
    f = np.clip(d.draw_l / vol, 0.0, 1.0)
    ua = col(p.wh_ua_kw_per_c)
    mode_cop = d.mode * col(p.hvac_cop)
    cons = [
        ch <= np.broadcast_to(col(p.bat_kw), shape),
        dis <= d.max_discharge_kw,
        xh <= np.broadcast_to(col(p.hvac_kw), shape),
        xw <= np.broadcast_to(col(p.wh_kw), shape),
        cur <= d.pv_kw,
        soc[:, 0] == d.soc0_kwh,
        t_in[:, 0] == d.t_in0_c,
        tank[:, 0] == d.tank0_c,
        soc[:, 1:] == soc[:, :-1] + dt * (cp.multiply(eta, ch) - cp.multiply(1 / eta, dis)),
        soc[:, 1:] >= np.broadcast_to(col(p.e_min_kwh), shape),
        soc[:, 1:] <= np.broadcast_to(col(p.e_max_kwh), shape),
        t_in[:, 1:]
        == cp.multiply(a, t_in[:, :-1])
        + (1 - a) * (d.t_out_c[None, :] + r * d.gain_kw)
        + cp.multiply((1 - a) * r * mode_cop, xh),
        tank[:, 1:]
        == cp.multiply(1 - f - dt * ua / cw, tank[:, :-1])
        + f * T_MAINS_C
        + dt * ua * T_AMBIENT_TANK_C / cw
        + cp.multiply(dt / cw, xw),
        t_in[:, 1:] >= col(p.t_low_c) - s_t,
        t_in[:, 1:] <= col(p.t_high_c) + s_t,
        tank[:, 1:] >= col(p.tank_low_c) - s_w,
        tank[:, 1:] <= col(p.tank_high_c) + s_w,
        short >= d.soc0_kwh - soc[:, t],
    ]
    imp = d.load_kw - d.pv_kw + cur + ch - dis + xh + xw
    tan_s = col(d.tan_phi[d.smart_idx])
    q = cp.multiply(tan_s, d.load_kw + xh)
    energy = cp.sum(imp @ (d.price_usd_per_kwh * dt))
    other = d.degradation_usd_per_kwh * dt * cp.sum(ch + dis) + d.terminal_usd_per_kwh @ short
    comfort = COMFORT_WEIGHT_USD_PER_C * cp.sum(s_t + s_w)
    return HomeProgram(
        ch,
        dis,
        xh,
        xw,
        cur,
        soc,
        t_in,
        tank,
        s_t + s_w,
        short,
        imp,
        q,
        cons,
        energy,
        other,
        comfort,
    )


@dataclass
class Dispatch:
    """A dispatch of the smart homes over the horizon (arrays (H, T), kW) and the states it
    leads to by the fleet's own step functions (end of each slot)."""

    battery_kw: np.ndarray  # charge positive
    hvac_kw: np.ndarray
    wh_kw: np.ndarray
    curtail_kw: np.ndarray
    soc_kwh: np.ndarray
    t_in_c: np.ndarray
    tank_c: np.ndarray
    comfort_violation_c: np.ndarray  # degC outside the house band + outside the tank band
    import_kw: np.ndarray  # (n_homes, T): every home, ordinary ones at their fixed load
    q_kvar: np.ndarray  # (n_homes, T)


def simulate(
    d: HomeData, battery_kw: np.ndarray, hvac_kw: np.ndarray, wh_kw: np.ndarray, curtail_kw
) -> Dispatch:
    """Replay the smart homes' powers (H, T) slot by slot through `sim.hems.appliances`'
    step functions from the start states; every home's import and reactive power."""
    p, dt = d.params, d.dt_h
    soc, t_in, tank = d.soc0_kwh.copy(), d.t_in0_c.copy(), d.tank0_c.copy()
    out = {k: np.zeros((d.n_smart, d.n_slots)) for k in ("soc", "t_in", "tank", "viol")}
    for k in range(d.n_slots):
        soc = battery_step(p, soc, battery_kw[:, k], dt)
        t_in = hvac_step(p, t_in, d.t_out_c[k], d.gain_kw[:, k], d.mode[:, k], hvac_kw[:, k], dt)
        tank = wh_step(p, tank, d.draw_l[:, k], wh_kw[:, k], dt)
        out["soc"][:, k], out["t_in"][:, k], out["tank"][:, k] = soc, t_in, tank
        out["viol"][:, k] = (
            np.maximum(p.t_low_c - t_in, 0)
            + np.maximum(t_in - p.t_high_c, 0)
            + np.maximum(p.tank_low_c - tank, 0)
            + np.maximum(tank - p.tank_high_c, 0)
        )
    si = d.smart_idx
    imp = d.fixed_kw.copy()
    imp[si] += curtail_kw + battery_kw + hvac_kw + wh_kw
    q = d.q_fixed_kvar.copy()
    q[si] += hvac_kw * d.tan_phi[si, None]
    return Dispatch(
        battery_kw, hvac_kw, wh_kw, curtail_kw, out["soc"], out["t_in"], out["tank"],
        out["viol"], imp, q,
    )  # fmt: skip


def schedule_cost_usd(d: HomeData, disp: Dispatch) -> dict[str, np.ndarray]:
    """Per smart home ($): energy (net import x price x slot hours; export credited at the
    same price, net metering), battery degradation, the terminal value of SOC below its start,
    the comfort penalty, and `objective` (their sum, what the oracle minimizes less the grid
    slack penalties). Also `energy_all_usd` (n_homes,): every home's energy cost."""
    dt = d.dt_h
    energy_all = disp.import_kw @ d.price_usd_per_kwh * dt
    energy = energy_all[d.smart_idx]
    deg = d.degradation_usd_per_kwh * dt * np.abs(disp.battery_kw).sum(axis=1)
    end = disp.soc_kwh[:, -1] if d.n_slots else d.soc0_kwh
    terminal = d.terminal_usd_per_kwh * np.maximum(d.soc0_kwh - end, 0.0)
    comfort = COMFORT_WEIGHT_USD_PER_C * disp.comfort_violation_c.sum(axis=1)
    return {
        "energy_usd": energy,
        "degradation_usd": deg,
        "terminal_usd": terminal,
        "comfort_usd": comfort,
        "objective_usd": energy + deg + terminal + comfort,
        "energy_all_usd": energy_all,
    }
