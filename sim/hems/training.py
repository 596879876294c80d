"""Training data and the training of the ADP value functions (see :mod:`sim.hems.policy`).

``sample_training_days`` draws the sampled days a fleet trains on (price noise around the
forecast, the day's temperature plus forecast errors, cloudiness, pooled richardsonpy households
scaled to each home's occupant count); ``train_value_functions`` runs the backward
sample-average dynamic programme on the state grids.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .appliances import (
    SmartHomeParams,
    battery_candidates,
    hvac_free_slope,
    hvac_mode,
    internal_gains_kw,
    max_draw_litres,
    wh_free_slope,
)
from .data import hot_water_draws, household_days, sample_prices
from .policy import (
    COMFORT_PENALTY_USD_PER_C,
    DEVICES,
    ValueFunctions,
    _with_values,
    interp_uniform,
    state_nodes,
)

if TYPE_CHECKING:
    from .fleet import HEMSFleet

TRAIN_POOL_HOUSEHOLDS = 8
TRAIN_GHI_FACTOR_MIN, TRAIN_GHI_FACTOR_MAX = 0.5, 1.2


def training_pool(fleet: HEMSFleet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training households (richardsonpy, seeded): load, occupancy, the largest
    gains each could cause (for sizing), occupant counts."""
    cfg = fleet.config
    spd = fleet.slots_per_day
    ghi = fleet.weather.ghi_w_m2[:spd]
    loads, occs, n_occ = [], [], []
    for j in range(TRAIN_POOL_HOUSEHOLDS):
        n = 1 + j % 5
        lo, oc = household_days(10_000 + 31 * cfg.seed + j, n, cfg.start_day, 1, ghi, cfg.slot_s)
        loads.append(lo)
        occs.append(oc)
        n_occ.append(n)
    loads, occs = np.array(loads), np.array(occs)
    occ_max = fleet.n_occupants.max()
    gmax = [
        internal_gains_kw(
            ld * np.sqrt(occ_max), np.full(spd, float(occ_max)), TRAIN_GHI_FACTOR_MAX * ghi
        )
        for ld in loads
    ]
    fleet._pool_cache = (loads, occs, np.array(gmax), np.array(n_occ))
    return fleet._pool_cache


def sample_training_days(fleet: HEMSFleet, day: int) -> TrainingData:
    """Sampled days for training the value functions of simulated day ``day``.

    Prices: hourly lognormal noise around the forecast. Outdoor temperature:
    the day's weather plus an AR(1) forecast error (sigma ``temp_forecast_sd_c``,
    hourly correlation 0.9). Irradiance: the day's GHI times a random daily
    factor (cloudiness). Loads, occupancy and hot-water draws: pooled
    richardsonpy households scaled to each home's occupant count.
    """
    cfg = fleet.config
    rng = np.random.default_rng([*fleet._train_seed.generate_state(2), day])
    k, spd = cfg.n_train_days, fleet.slots_per_day
    p = fleet.params
    si = fleet.smart_idx
    m = cfg.n_price_samples
    price = sample_prices(
        rng, cfg.price_forecast_usd_per_kwh, cfg.price_noise, k * m, cfg.slot_s
    ).reshape(k, m, spd)
    day_slots = slice(day * spd, (day + 1) * spd)
    phi = 0.9**fleet.dt_h
    err = np.empty((k, spd))
    err[:, 0] = rng.normal(0.0, cfg.temp_forecast_sd_c, k)
    for t in range(1, spd):
        err[:, t] = phi * err[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(
            0.0, cfg.temp_forecast_sd_c, k
        )
    t_out = fleet.t_out_c[day_slots][None, :] + err
    ghi = fleet.weather.ghi_w_m2[day_slots][None, :] * rng.uniform(
        TRAIN_GHI_FACTOR_MIN, TRAIN_GHI_FACTOR_MAX, (k, 1)
    )
    pool_load, pool_occ, _, pool_n = fleet.training_pool()
    pick = rng.integers(0, TRAIN_POOL_HOUSEHOLDS, (k, len(si)))
    scale = fleet.n_occupants[si][None, :] / pool_n[pick]
    gain = np.empty((k, len(si), spd))
    draw = np.empty((k, len(si), spd))
    mode = np.empty((k, len(si), spd))
    for d in range(k):
        ld = pool_load[pick[d]] * np.sqrt(scale[d])[:, None]
        oc = np.minimum(pool_occ[pick[d]] * scale[d][:, None], fleet.n_occupants[si][:, None])
        gain[d] = internal_gains_kw(ld, oc, ghi[d][None, :])
        draw[d] = hot_water_draws(
            rng,
            oc,
            p.hot_water_l_per_person_day,
            fleet.n_occupants[si],
            cfg.slot_s,
            max_draw_litres(p, fleet.dt_h),
        )
        mode[d] = hvac_mode(p, t_out[d][None, :], gain[d])
    return TrainingData(price=price, t_out_c=t_out, gain_kw=gain, mode=mode, draw_l=draw)


@dataclass
class TrainingData:
    """Sampled days for training: prices (K, M, S) (M price scenarios per sampled
    day), t_out (K, S), per home (K, H, S)."""

    price: np.ndarray
    t_out_c: np.ndarray
    gain_kw: np.ndarray
    mode: np.ndarray
    draw_l: np.ndarray


def train_value_functions(
    params: SmartHomeParams,
    data: TrainingData,
    dt_h: float,
    n_points: int,
    deg_usd_per_kwh: float,
    terminal_usd_per_kwh: np.ndarray,
    e0_kwh: np.ndarray,
    chunk: int = 250,
) -> tuple[ValueFunctions, float]:
    """Backward stochastic DP on the state grids; returns (value functions, seconds).

    ``V[t](s) = mean_k,m min_u [price_kmt * dt * x + extra + P * viol + V[t+1](s')]``
    over the K sampled days and M price scenarios per day, for every node s of
    each device's grid, every home.
    """
    t0 = time.perf_counter()
    k_days, _, s = data.price.shape
    vf = ValueFunctions(params, s, n_points)
    h = params.n
    for start in range(0, h, chunk):
        sl = np.arange(start, min(start + chunk, h))
        p = params.subset(sl)
        nodes = state_nodes(p, n_points)
        lo = {d: vf.lo[d][sl] for d in DEVICES}
        hi = {d: vf.hi[d][sl] for d in DEVICES}
        vf.v["bat"][s, sl] = terminal_usd_per_kwh[sl, None] * np.maximum(
            e0_kwh[sl, None] - nodes["bat"], 0.0
        )
        bx, bn, _, bextra, bvalid = battery_candidates(
            p, nodes["bat"], nodes["bat"], dt_h, deg_usd_per_kwh
        )
        for t in range(s - 1, -1, -1):
            nxt_v = {d: vf.v[d][t + 1, sl] for d in DEVICES}
            vfun = {d: functools.partial(interp_uniform, nxt_v[d], lo[d], hi[d]) for d in DEVICES}
            fb = bextra + _with_values(bn, nxt_v["bat"], vfun["bat"])
            fb = np.where(bvalid, fb, np.inf)
            acc = {d: np.zeros((len(sl), n_points)) for d in DEVICES}
            for k in range(k_days):
                prices = data.price[k, :, t]
                for price in prices:
                    acc["bat"] += (price * dt_h * bx + fb).min(axis=-1)
                free, slope = hvac_free_slope(
                    p,
                    nodes["hvac"],
                    data.t_out_c[k, t],
                    data.gain_kw[k, sl, t][:, None],
                    data.mode[k, sl, t][:, None],
                    dt_h,
                )
                acc["hvac"] += _dp_linear(
                    free, slope, p.hvac_kw, nodes["hvac"], prices, dt_h, nxt_v["hvac"], vfun["hvac"]
                )
                free, slope = wh_free_slope(p, nodes["wh"], data.draw_l[k, sl, t][:, None], dt_h)
                acc["wh"] += _dp_linear(
                    free, slope, p.wh_kw, nodes["wh"], prices, dt_h, nxt_v["wh"], vfun["wh"]
                )
            for d in DEVICES:
                vf.v[d][t, sl] = acc[d] / (k_days * data.price.shape[1])
    return vf, time.perf_counter() - t0


VALUE_FUNCTION_ARRAYS = DEVICES  # one table V[dev] (S + 1, H, G) per device


@functools.cache
def _training_code() -> str:
    """Digest of the code that computes the value functions (this module, the policy's
    interpolation and the appliances' models)."""
    import sys

    from sim.cache import source_digest

    from . import appliances, policy

    return source_digest([sys.modules[__name__], policy, appliances])


def cached_value_functions(
    params: SmartHomeParams,
    data: TrainingData,
    dt_h: float,
    n_points: int,
    deg_usd_per_kwh: float,
    terminal_usd_per_kwh: np.ndarray,
    e0_kwh: np.ndarray,
) -> tuple[ValueFunctions, float, bool]:
    """:func:`train_value_functions` through the set-up cache (:mod:`sim.cache`):
    ``(value functions, seconds, from_cache)``. The key hashes every input (the homes'
    parameters, the sampled days, the grid and costs) and the training code, so a hit holds
    exactly the tables a fresh training computes (``tests/test_hems_fleet.py`` compares)."""
    from sim.cache import cached_arrays

    t0 = time.perf_counter()
    inputs = {
        "params": {name: np.asarray(value) for name, value in vars(params).items()},
        "data": {name: np.asarray(value) for name, value in vars(data).items()},
        "dt_h": float(dt_h),
        "n_points": int(n_points),
        "deg_usd_per_kwh": float(deg_usd_per_kwh),
        "terminal_usd_per_kwh": np.asarray(terminal_usd_per_kwh, dtype=float),
        "e0_kwh": np.asarray(e0_kwh, dtype=float),
    }

    def fresh() -> dict[str, np.ndarray]:
        vf, _ = train_value_functions(
            params, data, dt_h, n_points, deg_usd_per_kwh, terminal_usd_per_kwh, e0_kwh
        )
        return {d: vf.v[d] for d in VALUE_FUNCTION_ARRAYS}

    arrays, hit = cached_arrays("value_functions", _training_code(), inputs, fresh)
    vf = ValueFunctions(params, data.price.shape[2], n_points)
    for d in VALUE_FUNCTION_ARRAYS:
        if arrays[d].shape != vf.v[d].shape:  # a key collision cannot pass; a bug would
            raise ValueError(f"cached value function {d} has shape {arrays[d].shape}")
        vf.v[d] = arrays[d]
    return vf, time.perf_counter() - t0, hit


def _dp_linear(
    free: np.ndarray,
    slope: np.ndarray,
    xmax: np.ndarray,
    nodes: np.ndarray,
    prices: np.ndarray,
    dt_h: float,
    node_vals: np.ndarray,
    vfun,
) -> np.ndarray:
    """Exact one-step minimum, summed over ``prices``, for a device with next state
    ``free + slope * x``.

    Same candidate set as :func:`build_options` (reachable nodes, x = 0, x = xmax)
    and the same lexicographic comfort rule, written for speed: reaching node j
    from state i costs ``price * dt * (node_j - free_i) / slope + V_j``, so the
    node part is ``min_j (c node_j + V_j)`` over the reachable window, minus
    ``c free_i`` (states (H, G), nodes (H, G), ``slope`` (H, 1) per home).
    """
    xm = xmax[:, None]
    end = free + slope * xm
    r_lo, r_hi = np.minimum(free, end), np.maximum(free, end)
    nb = nodes[:, None, :]
    reach = (nb >= r_lo[..., None] - 1e-9) & (nb <= r_hi[..., None] + 1e-9)
    any_node = reach.any(axis=-1)
    lo, hi = nodes[:, :1], nodes[:, -1:]
    v0 = np.maximum(lo - free, 0.0) + np.maximum(free - hi, 0.0)
    v1 = np.maximum(lo - end, 0.0) + np.maximum(end - hi, 0.0)
    ends = vfun(np.stack([free, end], axis=-1))
    minviol = np.where(any_node, 0.0, np.minimum(v0, v1))
    ok0 = v0 <= minviol + 1e-9
    ok1 = v1 <= minviol + 1e-9
    base0 = np.where(ok0, ends[..., 0] + COMFORT_PENALTY_USD_PER_C * v0, np.inf)
    base1 = ends[..., 1] + COMFORT_PENALTY_USD_PER_C * v1
    inv_slope = dt_h / slope  # (H, 1): the slope does not depend on the state
    unreachable = np.where(reach, 0.0, np.inf)  # additive mask, reused for every price
    total = np.zeros(free.shape)
    for price in prices:
        c = price * inv_slope  # $ per degC
        w = c * nodes + node_vals  # (H, G)
        node_min = (unreachable + w[:, None, :]).min(axis=-1)
        node_cost = np.where(any_node, node_min - c * free, np.inf)
        cost1 = np.where(ok1, price * dt_h * xm + base1, np.inf)
        total += np.minimum(np.minimum(node_cost, base0), cost1)
    return total
