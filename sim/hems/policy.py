"""ADP policy: separable value functions and the vectorized one-step problem.

One-step look-ahead (slot t of the day, price p in $/kWh, slot of dt hours)::

    min_u  p * dt * L(u) + c_deg * dt * |x_bat| + P * viol(u)
           + V_bat[t+1](e') + V_in[t+1](T_in') + V_tank[t+1](T_w')
    L(u) = load - pv + x_bat + x_hvac + x_wh      (net grid import, kW)

Comfort is lexicographic: for each device only candidates whose next-state
comfort violation is minimal (zero whenever reachable) are admissible; ``P``
(``COMFORT_PENALTY_USD_PER_C``) additionally prices violations in training.

With a price that is linear in the import (net metering) the problem splits
into one problem per device, so each device picks the best of its candidate
powers with numpy over all homes at once. The candidates are the powers that
move the device's state exactly onto each node of its value grid (if
reachable in one slot) plus the ends of its power interval (and idle for the
battery); because the stage cost is linear in the power and the value
function is linear between nodes, the best candidate is the exact optimum
of the continuous one-step problem. The optimal import is non-increasing in
the price (exact minimisation over a price-independent candidate set), hence
``Lmin = L(p_high) <= Lmax = L(p_low)``.

Under a cap ``L <= cap`` a per-home multiplier ``mu >= 0`` is added to the
price and found by vectorized bisection (the import is monotone in ``mu``).

Value functions ``V[t](s)`` for t = 0..S (S slots per day) are separable
(one per device) and piecewise linear on a uniform grid over each home's
band (SOC range, indoor comfort band, tank band). They are trained
(:mod:`sim.hems.training`) by a backward pass of sample-average stochastic
dynamic programming on the grid
(``V[t](node) = mean over sampled scenarios of the one-step minimum``), over
sampled days: hourly price noise around the forecast, the day's temperature
plus forecast errors, cloudiness, pooled richardsonpy households' loads,
occupancy and hot-water draws. Separability is exact for the deterministic
problem because with a linear price the devices only interact through the
cap. The terminal value penalizes a battery shortfall below the initial SOC
at ``max(price forecast) / efficiency`` $/kWh; thermal terminal values are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .appliances import (
    SmartHomeParams,
    battery_candidates,
    hvac_candidates,
    wh_candidates,
)

__all__ = [
    "COMFORT_PENALTY_USD_PER_C",
    "ExoSlot",
    "Options",
    "ValueFunctions",
    "Policy",
    "ADPPolicy",
    "MyopicPolicy",
    "build_options",
    "respond",
    "capped_response",
    "state_nodes",
]

COMFORT_PENALTY_USD_PER_C = 10.0
DEVICES = ("bat", "hvac", "wh")


@dataclass
class ExoSlot:
    """Exogenous inputs of one slot for the smart homes (arrays broadcast over homes)."""

    t_out_c: np.ndarray | float
    gain_kw: np.ndarray
    mode: np.ndarray
    draw_l: np.ndarray
    max_discharge_kw: np.ndarray | None = None  # per home; None: the battery may export
    pv_kw: np.ndarray | None = None  # per home: PV output the inverter may curtail


@dataclass
class Options:
    """Candidate actions of one device for every home: arrays (H, K)."""

    x: np.ndarray  # electric power, kW
    nxt: np.ndarray  # next state
    viol: np.ndarray  # comfort violation of the next state, degC
    f: np.ndarray  # $: extra cost + penalty + value of the next state
    admissible: np.ndarray  # bool


def interp_uniform(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of per-home tables ``v`` (H, G) on uniform grids
    [lo, hi] at queries ``q`` (H, ...); queries are clipped to the grid."""
    h, g = v.shape
    nd = q.ndim
    lo_c = lo.reshape((-1,) + (1,) * (nd - 1))
    hi_c = hi.reshape((-1,) + (1,) * (nd - 1))
    u = np.clip((q - lo_c) / (hi_c - lo_c) * (g - 1), 0.0, g - 1)
    i0 = np.minimum(u.astype(np.int64), g - 2)
    w = u - i0
    flat = i0.reshape(h, -1)
    v0 = np.take_along_axis(v, flat, axis=1).reshape(q.shape)
    v1 = np.take_along_axis(v, flat + 1, axis=1).reshape(q.shape)
    return v0 + w * (v1 - v0)


class ValueFunctions:
    """Tables V[dev][t] of shape (S + 1, H, G) on per-home uniform grids [lo, hi]."""

    def __init__(self, params: SmartHomeParams, slots_per_day: int, n_points: int) -> None:
        self.s = slots_per_day
        self.g = n_points
        self.lo = {"bat": params.e_min_kwh, "hvac": params.t_low_c, "wh": params.tank_low_c}
        self.hi = {"bat": params.e_max_kwh, "hvac": params.t_high_c, "wh": params.tank_high_c}
        h = params.n
        self.v = {d: np.zeros((slots_per_day + 1, h, n_points)) for d in DEVICES}

    def grid(self, dev: str) -> np.ndarray:
        return self.lo[dev][:, None] + (self.hi[dev] - self.lo[dev])[:, None] * np.linspace(
            0.0, 1.0, self.g
        )

    def value(self, dev: str, t: int, q: np.ndarray) -> np.ndarray:
        return interp_uniform(self.v[dev][t], self.lo[dev], self.hi[dev], q)


class Policy:
    """Gives the value ($) of next states; ``t`` is the slot of the day of the decision."""

    name = "base"

    def next_value(self, dev: str, t: int, q: np.ndarray) -> np.ndarray:
        """Value of arbitrary next states q (H, ...)."""
        raise NotImplementedError

    def node_values(self, dev: str, t: int, nodes: np.ndarray) -> np.ndarray:
        """Value at the grid nodes (H, G) of the device."""
        return self.next_value(dev, t, nodes)


class ADPPolicy(Policy):
    name = "adp"

    def __init__(self, vf: ValueFunctions) -> None:
        self.vf = vf

    def next_value(self, dev: str, t: int, q: np.ndarray) -> np.ndarray:
        return self.vf.value(dev, t + 1, q)

    def node_values(self, dev: str, t: int, nodes: np.ndarray) -> np.ndarray:
        return self.vf.v[dev][t + 1]


class MyopicPolicy(Policy):
    """No look-ahead: thermal states have no value; stored battery energy is valued
    at a static ``value_usd_per_kwh`` (e.g. the mean forecast price times the
    discharge efficiency), i.e. a greedy threshold policy."""

    name = "myopic"

    def __init__(self, value_usd_per_kwh: np.ndarray) -> None:
        self.value = np.asarray(value_usd_per_kwh, dtype=float)

    def next_value(self, dev: str, t: int, q: np.ndarray) -> np.ndarray:
        if dev != "bat":
            return np.zeros_like(q)
        return -self.value.reshape((-1,) + (1,) * (q.ndim - 1)) * q


def _admissible(viol: np.ndarray, valid: np.ndarray) -> np.ndarray:
    v = np.where(valid, viol, np.inf)
    return valid & (v <= v.min(axis=-1, keepdims=True) + 1e-9)


def state_nodes(params: SmartHomeParams, n_points: int) -> dict[str, np.ndarray]:
    """Uniform per-home grids (H, G) over the SOC range and the two comfort bands."""
    s = np.linspace(0.0, 1.0, n_points)
    bands = {
        "bat": (params.e_min_kwh, params.e_max_kwh),
        "hvac": (params.t_low_c, params.t_high_c),
        "wh": (params.tank_low_c, params.tank_high_c),
    }
    return {d: lo[:, None] + (hi - lo)[:, None] * s for d, (lo, hi) in bands.items()}


def _with_values(nxt: np.ndarray, node_vals: np.ndarray, v_next_fn) -> np.ndarray:
    """Value of candidates: nodes (first G) by lookup, the rest by ``v_next_fn``."""
    g = node_vals.shape[1]
    nd = nxt.ndim
    nv = np.broadcast_to(
        node_vals.reshape((node_vals.shape[0],) + (1,) * (nd - 2) + (g,)), nxt.shape[:-1] + (g,)
    )
    return np.concatenate([nv, v_next_fn(nxt[..., g:])], axis=-1)


def build_options(
    params: SmartHomeParams,
    state: dict[str, np.ndarray],
    exo: ExoSlot,
    policy: Policy,
    t: int,
    dt_h: float,
    nodes: dict[str, np.ndarray],
    deg_usd_per_kwh: float,
) -> dict[str, Options]:
    """Candidate actions of each device with their non-price cost ``f`` (H, K)."""
    cands = {
        "bat": battery_candidates(
            params, state["bat"], nodes["bat"], dt_h, deg_usd_per_kwh, exo.max_discharge_kw
        ),
        "hvac": hvac_candidates(
            params, state["hvac"], exo.t_out_c, exo.gain_kw, exo.mode, nodes["hvac"], dt_h
        ),
        "wh": wh_candidates(params, state["wh"], exo.draw_l, nodes["wh"], dt_h),
    }
    out = {}
    for dev, (x, nxt, viol, extra, valid) in cands.items():
        vals = _with_values(
            nxt, policy.node_values(dev, t, nodes[dev]), lambda q, d=dev: policy.next_value(d, t, q)
        )
        f = extra + COMFORT_PENALTY_USD_PER_C * viol + vals
        out[dev] = Options(x=x, nxt=nxt, viol=viol, f=f, admissible=_admissible(viol, valid))
    if exo.pv_kw is not None:
        out["pv"] = pv_curtailment_options(exo.pv_kw)
    return out


def pv_curtailment_options(pv_kw: np.ndarray) -> Options:
    """Curtailing PV (kW, counted as added import): none or all of this slot's output.

    PV has no state and no running cost, so a home curtails only at a negative price,
    where exporting costs money; under a cap the Lagrangian mix of ``capped_response``
    curtails just enough. Mixing 0 and all gives any amount in between.
    """
    pv = np.maximum(np.asarray(pv_kw, dtype=float), 0.0)
    x = np.stack([np.zeros_like(pv), pv], axis=1)
    zeros = np.zeros_like(x)
    return Options(x=x, nxt=zeros, viol=zeros, f=zeros, admissible=np.ones(x.shape, bool))


def _pick(opt: Options, price: np.ndarray, dt_h: float) -> np.ndarray:
    score = price[:, None] * dt_h * opt.x + opt.f
    score = np.where(opt.admissible, score, np.inf)
    return np.argmin(score, axis=1)


def respond(
    options: dict[str, Options],
    price: np.ndarray,
    dt_h: float,
) -> dict[str, np.ndarray]:
    """Index of the chosen candidate of each device at ``price`` (H,) $/kWh."""
    return {dev: _pick(opt, price, dt_h) for dev, opt in options.items()}


def controllable_kw(options: dict[str, Options], idx: dict[str, np.ndarray]) -> np.ndarray:
    rows = np.arange(len(next(iter(idx.values()))))
    return sum(options[d].x[rows, idx[d]] for d in options)


def _powers(options: dict[str, Options], idx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = np.arange(len(next(iter(idx.values()))))
    return {d: options[d].x[rows, idx[d]] for d in options}


def capped_response(
    options: dict[str, Options],
    price: np.ndarray,
    base_kw: np.ndarray,
    cap_kw: np.ndarray,
    dt_h: float,
    iters: int = 50,
    mu_max: float = 1e4,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Best comfort-keeping powers (kW per device) with ``base + controllable <= cap``.

    Homes whose unconstrained optimum exceeds the cap get a multiplier ``mu``
    added to their price, found by bisection: ``mu_hi`` gives a response B
    within the cap, ``mu_lo`` a response A above it. The powers are then
    ``B + theta (A - B)`` with theta chosen so that the import equals the cap
    (the Lagrangian solution of the continuous problem when the value
    functions are convex). Both A and B are comfort-keeping and the dynamics
    are linear in the power, so the mix keeps comfort and power limits.

    Returns ``(powers, feasible)``; ``feasible[i]`` is False when even the
    smallest comfort-keeping import exceeds the cap: then the powers are that
    floor (maximum discharge, least HVAC and water-heater power) and the
    caller sheds load.
    """
    h = len(price)
    x = _powers(options, respond(options, price, dt_h))
    load = base_kw + sum(x.values())
    over = load > cap_kw
    floor_idx = {}
    for d, opt in options.items():
        xs = np.where(opt.admissible, opt.x, np.inf)
        # among admissible candidates with the smallest power, prefer the lowest f
        xmin = xs.min(axis=1, keepdims=True)
        tie = np.where(xs <= xmin + 1e-12, opt.f, np.inf)
        floor_idx[d] = np.argmin(tie, axis=1)
    floor = _powers(options, floor_idx)
    floor_load = base_kw + sum(floor.values())
    feasible = floor_load <= cap_kw
    active = over & feasible
    if np.any(active):
        lo = np.zeros(h)
        hi = np.full(h, mu_max)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            trial = respond(options, price + mid, dt_h)
            ok = base_kw + controllable_kw(options, trial) <= cap_kw
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        xb = _powers(options, respond(options, price + hi, dt_h))
        lb = base_kw + sum(xb.values())
        ok_b = lb <= cap_kw
        xb = {d: np.where(ok_b, xb[d], floor[d]) for d in options}
        lb = np.where(ok_b, lb, floor_load)
        xa = _powers(options, respond(options, price + lo, dt_h))
        la = base_kw + sum(xa.values())
        span = la - lb
        theta = np.where(span > 1e-12, (cap_kw - lb) / np.where(span > 1e-12, span, 1.0), 0.0)
        theta = np.clip(theta, 0.0, 1.0)
        for d in options:
            mixed = xb[d] + theta * (xa[d] - xb[d])
            x[d] = np.where(active, mixed, x[d])
    not_feasible = over & ~feasible
    for d in options:
        x[d] = np.where(not_feasible, floor[d], x[d])
    return x, feasible
