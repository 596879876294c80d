"""Vectorized appliance models of the smart homes (numpy arrays over homes).

All device parameters are arrays of shape (H,) for H smart homes. Model
functions accept states of shape (H, ...) and exogenous inputs broadcastable
to them, so the same code serves one slot of the fleet (H,), training on a
state grid (H, G) and candidate actions (H, G, K). Decisions are electric
powers in kW held constant over the slot of ``dt_h`` hours.

* Battery (AC side): ``x > 0`` charges, ``x < 0`` discharges.
  ``e' = e + eta * dt * x+ - dt * x- / eta`` (kWh), ``e`` in [e_min, e_max].
* HVAC and house (1R1C, exact zero-order-hold discretization):
  ``T' = a T + (1 - a) (T_out + R (Q_gain + s * COP * x))``, ``a = exp(-dt / (R C))``,
  ``s = +1`` heating, ``-1`` cooling (heat pump; mode per slot from the
  free-floating temperature, see :func:`hvac_mode`). Comfort band [t_low, t_high].
* Electric water heater (one-node tank, litres ``V``, ``C_w = V * 4.186 / 3600``
  kWh/degC): a draw of ``v`` litres is replaced by mains water, then the element
  (efficiency 1) and standby losses ``UA (T_w - T_amb)`` act over the slot:
  ``T_w' = (1 - v/V) T_w + (v/V) T_mains + dt (x - UA (T_w - T_amb)) / C_w``.
  Band [tank_low, tank_high].
* PV and non-controllable load are exogenous (kW).

Candidate generators return ``(x, next_state, violation, extra_cost, valid)``
with a trailing candidate axis: first the powers that reach each node of the
device's value grid (``valid`` False where unreachable), then the ends of the
feasible power interval. ``violation`` is the comfort violation (degC) of the
next state, ``extra_cost`` is in $ (battery degradation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import FleetConfig, HEMSConfigError

__all__ = [
    "SmartHomeParams",
    "sample_params",
    "battery_step",
    "battery_candidates",
    "hvac_step",
    "hvac_candidates",
    "hvac_free_slope",
    "wh_free_slope",
    "hvac_mode",
    "wh_step",
    "wh_candidates",
    "size_hvac",
    "max_draw_litres",
    "WATER_KWH_PER_L_C",
    "T_MAINS_C",
    "T_AMBIENT_TANK_C",
]

WATER_KWH_PER_L_C = 4.186 / 3600.0  # kWh per litre per degC
T_MAINS_C = 15.0  # cold-water inlet temperature, degC
T_AMBIENT_TANK_C = 20.0  # ambient temperature around the tank, degC
GAIN_PER_OCCUPANT_KW = 0.08  # sensible heat of an active occupant, kW
LOAD_HEAT_FRACTION = 0.8  # share of the non-controllable load that ends up as indoor heat
SOLAR_APERTURE_M2 = 2.0  # effective solar aperture of the windows, m2


def internal_gains_kw(load_kw: np.ndarray, active: np.ndarray, ghi_w_m2: np.ndarray) -> np.ndarray:
    """Heat gains inside a home (kW): part of its electric load, its active occupants and the
    sun through the windows."""
    return (
        LOAD_HEAT_FRACTION * load_kw
        + GAIN_PER_OCCUPANT_KW * active
        + SOLAR_APERTURE_M2 * ghi_w_m2 / 1000.0
    )


@dataclass
class SmartHomeParams:
    """Per-home parameter arrays (shape (H,)) of the smart homes; units in names."""

    pv_kwp: np.ndarray
    pv_orientation: np.ndarray  # index into data.ORIENTATIONS_DEG
    bat_kwh: np.ndarray
    bat_kw: np.ndarray
    bat_eff: np.ndarray  # one-way (charge = discharge) efficiency
    e_min_kwh: np.ndarray
    e_max_kwh: np.ndarray
    r_c_per_kw: np.ndarray
    c_kwh_per_c: np.ndarray
    hvac_kw: np.ndarray
    hvac_cop: np.ndarray
    t_low_c: np.ndarray
    t_high_c: np.ndarray
    tank_l: np.ndarray
    wh_kw: np.ndarray
    wh_ua_kw_per_c: np.ndarray
    tank_low_c: np.ndarray
    tank_high_c: np.ndarray
    hot_water_l_per_person_day: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.bat_kwh)
        for name, arr in vars(self).items():
            a = np.asarray(arr, dtype=float)
            if a.shape != (n,):
                raise HEMSConfigError(f"params.{name}", f"must have shape ({n},), got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise HEMSConfigError(f"params.{name}", "contains NaN or infinite values")
            setattr(self, name, a)
        self.pv_orientation = self.pv_orientation.astype(int)
        positive = (
            "bat_kwh",
            "bat_kw",
            "bat_eff",
            "r_c_per_kw",
            "c_kwh_per_c",
            "hvac_cop",
            "tank_l",
            "wh_kw",
        )
        for name in positive:
            if np.any(getattr(self, name) <= 0):
                raise HEMSConfigError(f"params.{name}", "must be > 0")
        for name in ("pv_kwp", "hvac_kw", "wh_ua_kw_per_c", "hot_water_l_per_person_day"):
            if np.any(getattr(self, name) < 0):
                raise HEMSConfigError(f"params.{name}", "must be >= 0")
        if np.any(self.bat_eff > 1):
            raise HEMSConfigError("params.bat_eff", "must be <= 1")
        if (
            np.any(self.e_min_kwh < 0)
            or np.any(self.e_max_kwh > self.bat_kwh)
            or np.any(self.e_min_kwh >= self.e_max_kwh)
        ):
            raise HEMSConfigError("params.e_min_kwh", "need 0 <= e_min < e_max <= capacity")
        if np.any(self.t_low_c >= self.t_high_c):
            raise HEMSConfigError("params.t_low_c", "comfort band inverted (t_low >= t_high)")
        if np.any(self.tank_low_c >= self.tank_high_c):
            raise HEMSConfigError("params.tank_low_c", "tank band inverted (low >= high)")
        if np.any(self.tank_low_c <= T_MAINS_C):
            raise HEMSConfigError("params.tank_low_c", f"must be above mains {T_MAINS_C} degC")

    @property
    def n(self) -> int:
        return len(self.bat_kwh)

    def subset(self, idx: np.ndarray) -> SmartHomeParams:
        return SmartHomeParams(**{k: np.asarray(v)[idx] for k, v in vars(self).items()})


def sample_params(rng: np.random.Generator, n: int, config: FleetConfig) -> SmartHomeParams:
    """Draw n smart homes' parameters uniformly from ``config.ranges`` (seeded rng)."""
    r = config.ranges

    def u(rg) -> np.ndarray:
        return rng.uniform(rg.lo, rg.hi, n)

    bat = u(r.battery_kwh)
    t_set, half = u(r.t_set_c), u(r.t_halfband_c)
    return SmartHomeParams(
        pv_kwp=u(r.pv_kwp),
        pv_orientation=rng.integers(0, 3, n),
        bat_kwh=bat,
        bat_kw=u(r.battery_kw),
        bat_eff=u(r.battery_eff),
        e_min_kwh=config.soc_min * bat,
        e_max_kwh=config.soc_max * bat,
        r_c_per_kw=u(r.r_c_per_kw),
        c_kwh_per_c=u(r.c_kwh_per_c),
        hvac_kw=u(r.hvac_kw),
        hvac_cop=u(r.hvac_cop),
        t_low_c=t_set - half,
        t_high_c=t_set + half,
        tank_l=u(r.tank_l),
        wh_kw=u(r.wh_kw),
        wh_ua_kw_per_c=u(r.wh_ua_kw_per_c),
        tank_low_c=u(r.tank_low_c),
        tank_high_c=u(r.tank_high_c),
        hot_water_l_per_person_day=u(r.hot_water_l_per_person_day),
    )


def _col(p: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a per-home array (H,) to broadcast against an array of ndim dims."""
    return p.reshape((-1,) + (1,) * (ndim - 1))


def _nodes_like(nodes: np.ndarray, nd: int) -> np.ndarray:
    """Per-home node grid (H, G) reshaped to broadcast against states of ndim nd."""
    return nodes.reshape((nodes.shape[0],) + (1,) * (nd - 1) + (nodes.shape[1],))


def _linear_candidates(
    free: np.ndarray,
    slope: np.ndarray,
    xmax: np.ndarray,
    nodes: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Candidates of a device whose next state is ``free + slope * x``, x in [0, xmax].

    The candidates are the powers that land exactly on each node of the value
    grid (valid only if reachable) plus the two ends x = 0 and x = xmax. With a
    value function that is linear between nodes and a cost linear in x, the
    best of these is the exact optimum over the continuous interval.
    """
    nd = free.ndim
    nb = _nodes_like(nodes, nd)
    xn = (nb - free[..., None]) / slope[..., None]
    ok = (xn >= -1e-9) & (xn <= xmax[..., None] + 1e-9)
    xn = np.where(ok, np.clip(xn, 0.0, xmax[..., None]), 0.0)
    nxt_n = np.broadcast_to(nb, xn.shape)
    x = np.concatenate(
        [xn, np.zeros(free.shape + (1,)), xmax[..., None] + np.zeros(free.shape + (1,))], axis=-1
    )
    nxt = np.concatenate([nxt_n, free[..., None], (free + slope * xmax)[..., None]], axis=-1)
    valid = np.concatenate([ok, np.ones(free.shape + (2,), dtype=bool)], axis=-1)
    lo, hi = _col(low, nd + 1), _col(high, nd + 1)
    viol = np.maximum(lo - nxt, 0.0) + np.maximum(nxt - hi, 0.0)
    return x, nxt, viol, valid


# ---------------------------------------------------------------- battery
def battery_step(p: SmartHomeParams, e: np.ndarray, x: np.ndarray, dt_h: float) -> np.ndarray:
    nd = np.ndim(x)
    eta = _col(p.bat_eff, nd)
    e_next = np.asarray(e) + dt_h * (eta * np.maximum(x, 0.0) + np.minimum(x, 0.0) / eta)
    return np.clip(e_next, _col(p.e_min_kwh, nd), _col(p.e_max_kwh, nd))


def battery_limits(p: SmartHomeParams, e: np.ndarray, dt_h: float) -> tuple[np.ndarray, ...]:
    """(max discharge kW >= 0, max charge kW >= 0) from power and SOC limits."""
    nd = np.ndim(e)
    eta = _col(p.bat_eff, nd)
    pmax = _col(p.bat_kw, nd)
    ch = np.clip((_col(p.e_max_kwh, nd) - e) / (eta * dt_h), 0.0, pmax)
    dis = np.clip((e - _col(p.e_min_kwh, nd)) * eta / dt_h, 0.0, pmax)
    return dis, ch


def battery_candidates(
    p: SmartHomeParams,
    e: np.ndarray,
    nodes: np.ndarray,
    dt_h: float,
    deg_usd_per_kwh: float,
    max_discharge_kw: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Powers reaching each SOC node, plus idle, full discharge and full charge.

    ``max_discharge_kw`` (per home, >= 0) caps the discharge below the power limit: a
    battery that may not export discharges at most the home's own net load.
    Returns ``(x, e_next, viol, extra_cost, valid)`` with a trailing candidate axis
    (G nodes first); ``extra_cost`` is the degradation cost in $.
    """
    e = np.asarray(e, dtype=float)
    nd = e.ndim
    eta = _col(p.bat_eff, nd + 1)
    nb = _nodes_like(nodes, nd)
    de = nb - e[..., None]
    xn = np.where(de >= 0, de / (eta * dt_h), de * eta / dt_h)
    ok = np.abs(xn) <= _col(p.bat_kw, nd + 1) + 1e-9
    dis, ch = battery_limits(p, e, dt_h)
    if max_discharge_kw is not None:
        cap = np.asarray(max_discharge_kw, dtype=float)
        dis = np.minimum(dis, cap)
        ok &= xn >= -cap[..., None] - 1e-9
    xn = np.where(ok, xn, 0.0)
    ends = np.stack([np.zeros_like(e), -dis, ch], axis=-1)
    x = np.concatenate([xn, ends], axis=-1)
    e_next = np.concatenate(
        [np.broadcast_to(nb, xn.shape), battery_step(p, e[..., None], ends, dt_h)], axis=-1
    )
    valid = np.concatenate([ok, np.ones(e.shape + (3,), dtype=bool)], axis=-1)
    viol = np.zeros_like(x)
    extra = deg_usd_per_kwh * dt_h * np.abs(x)
    return x, e_next, viol, extra, valid


# ---------------------------------------------------------------- HVAC
def hvac_mode(p: SmartHomeParams, t_out: np.ndarray, gain_kw: np.ndarray) -> np.ndarray:
    """+1 (heat) if the free-floating temperature is below mid-band, else -1 (cool)."""
    nd = max(np.ndim(t_out), np.ndim(gain_kw), 1)
    free = t_out + _col(p.r_c_per_kw, nd) * gain_kw
    mid = 0.5 * (_col(p.t_low_c, nd) + _col(p.t_high_c, nd))
    return np.where(free < mid, 1.0, -1.0)


def _hvac_coeffs(p: SmartHomeParams, nd: int, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.exp(-dt_h / (_col(p.r_c_per_kw, nd) * _col(p.c_kwh_per_c, nd)))
    return a, _col(p.r_c_per_kw, nd)


def hvac_step(
    p: SmartHomeParams,
    t_in: np.ndarray,
    t_out: np.ndarray,
    gain_kw: np.ndarray,
    mode: np.ndarray,
    x: np.ndarray,
    dt_h: float,
) -> np.ndarray:
    nd = np.ndim(x)
    a, r = _hvac_coeffs(p, nd, dt_h)
    return a * t_in + (1 - a) * (t_out + r * (gain_kw + mode * _col(p.hvac_cop, nd) * x))


def hvac_free_slope(
    p: SmartHomeParams,
    t_in: np.ndarray,
    t_out: np.ndarray,
    gain_kw: np.ndarray,
    mode: np.ndarray,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Next indoor temperature with the HVAC off (degC) and its slope (degC per kW)."""
    nd = max(np.ndim(t_in), 1)
    a, r = _hvac_coeffs(p, nd, dt_h)
    free = a * t_in + (1 - a) * (t_out + r * gain_kw)
    return free, (1 - a) * r * mode * _col(p.hvac_cop, nd)


def hvac_candidates(
    p: SmartHomeParams,
    t_in: np.ndarray,
    t_out: np.ndarray,
    gain_kw: np.ndarray,
    mode: np.ndarray,
    nodes: np.ndarray,
    dt_h: float,
) -> tuple[np.ndarray, ...]:
    """Powers reaching each indoor-temperature node, plus off and full power.

    Returns ``(x, t_next, viol, extra_cost, valid)`` (G nodes first).
    """
    t_in = np.asarray(t_in, dtype=float)
    nd = t_in.ndim
    free, slope = hvac_free_slope(p, t_in, t_out, gain_kw, mode, dt_h)
    free = np.broadcast_to(free, t_in.shape)
    slope = np.broadcast_to(slope, t_in.shape)
    pmax = np.broadcast_to(_col(p.hvac_kw, nd), t_in.shape)
    x, nxt, viol, valid = _linear_candidates(free, slope, pmax, nodes, p.t_low_c, p.t_high_c)
    return x, nxt, viol, np.zeros_like(x), valid


def size_hvac(
    p: SmartHomeParams, t_out: np.ndarray, gain_kw: np.ndarray, margin: float = 1.15
) -> np.ndarray:
    """HVAC rating (kW) that can hold either band edge in the given conditions.

    ``t_out`` (slots,) and ``gain_kw`` (H, slots). Holding the upper edge while
    cooling needs ``x >= (T_out + R Q - t_high) / (R COP)``; holding the lower
    edge while heating needs ``x >= (t_low - T_out - R Q) / (R COP)``. Returns
    ``max(hvac_kw, margin * need)`` per home.
    """
    r, cop = p.r_c_per_kw[:, None], p.hvac_cop[:, None]
    free = t_out[None, :] + r * gain_kw
    need = np.maximum(
        (free - p.t_high_c[:, None]) / (r * cop), (p.t_low_c[:, None] - free) / (r * cop)
    ).max(axis=1)
    return np.maximum(p.hvac_kw, margin * np.maximum(need, 0.0))


# ---------------------------------------------------------------- water heater
def max_draw_litres(p: SmartHomeParams, dt_h: float) -> np.ndarray:
    """Largest draw per slot the element can reheat from the lower band edge (80 %)."""
    return 0.8 * p.wh_kw * dt_h / (WATER_KWH_PER_L_C * (p.tank_low_c - T_MAINS_C))


def wh_free_slope(
    p: SmartHomeParams, t_w: np.ndarray, draw_l: np.ndarray, dt_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Next tank temperature with the element off (degC) and its slope (degC per kW)."""
    nd = np.ndim(t_w)
    vol = _col(p.tank_l, nd)
    cw = vol * WATER_KWH_PER_L_C
    f = np.clip(draw_l / vol, 0.0, 1.0)
    free = (
        (1 - f) * t_w
        + f * T_MAINS_C
        - dt_h * _col(p.wh_ua_kw_per_c, nd) * (t_w - T_AMBIENT_TANK_C) / cw
    )
    return free, dt_h / cw


def wh_step(
    p: SmartHomeParams, t_w: np.ndarray, draw_l: np.ndarray, x: np.ndarray, dt_h: float
) -> np.ndarray:
    free, slope = wh_free_slope(p, np.asarray(t_w, dtype=float), draw_l, dt_h)
    nd = np.ndim(x)
    if nd > np.ndim(free):
        free, slope = free[..., None], slope[..., None]
    return free + slope * x


def wh_candidates(
    p: SmartHomeParams, t_w: np.ndarray, draw_l: np.ndarray, nodes: np.ndarray, dt_h: float
) -> tuple[np.ndarray, ...]:
    """Powers reaching each tank-temperature node, plus off and full power.

    Returns ``(x, t_next, viol, extra_cost, valid)`` (G nodes first).
    """
    t_w = np.asarray(t_w, dtype=float)
    nd = t_w.ndim
    free, slope = wh_free_slope(p, t_w, draw_l, dt_h)
    free = np.broadcast_to(free, t_w.shape)
    slope = np.broadcast_to(slope, t_w.shape)
    pmax = np.broadcast_to(_col(p.wh_kw, nd), t_w.shape)
    x, nxt, viol, valid = _linear_candidates(free, slope, pmax, nodes, p.tank_low_c, p.tank_high_c)
    return x, nxt, viol, np.zeros_like(x), valid
