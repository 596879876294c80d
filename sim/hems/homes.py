"""The homes' data, drawn once per fleet: which homes are HEMS homes, their households' load
and occupancy (richardsonpy), and HVAC ratings sized for the simulated weather."""

from __future__ import annotations

import numpy as np

from .appliances import SmartHomeParams, size_hvac
from .config import FleetConfig
from .data import household_days


def fleet_seeds(config: FleetConfig) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(config.seed).spawn(7)


def smart_homes(config: FleetConfig) -> np.ndarray:
    """Which homes of a fleet built from `config` are HEMS homes (bool per home), without
    building the fleet (a fleet's profiles and training take seconds to minutes)."""
    h = config.n_homes
    smart = np.zeros(h, dtype=bool)
    smart[
        np.random.default_rng(fleet_seeds(config)[0]).permutation(h)[
            : int(round(config.smart_share * h))
        ]
    ] = True
    return smart


def household_loads(
    config: FleetConfig, n_occupants: np.ndarray, ghi_w_m2: np.ndarray, seed: np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray]:
    """Household load (kW) and active occupants per home and slot (richardsonpy), one
    household per home or, with ``load_profile_pool``, drawn from a pool."""
    cfg, h = config, config.n_homes
    n_slots = cfg.slots_per_day * cfg.n_days
    hh_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, h)
    load_kw = np.zeros((h, n_slots))
    occupancy = np.zeros((h, n_slots))
    pool = cfg.load_profile_pool
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # pooled households by seed
    for i in range(h):
        n_occ = int(n_occupants[i])
        if pool is None:
            household_seed = int(hh_seeds[i])
        else:
            household_seed = int(hh_seeds[i] % pool) * 7919 + n_occ
            if household_seed in cache:
                load_kw[i], occupancy[i] = cache[household_seed]
                continue
        load_kw[i], occupancy[i] = household_days(
            household_seed, n_occ, cfg.start_day, cfg.n_days, ghi_w_m2, cfg.slot_s
        )
        if pool is not None:
            cache[household_seed] = load_kw[i].copy(), occupancy[i].copy()
    return load_kw, occupancy


def hvac_sizes(
    params: SmartHomeParams,
    t_out_c: np.ndarray,
    gain_kw: np.ndarray,
    pool_gain_kw: np.ndarray,
    config: FleetConfig,
) -> np.ndarray:
    """HVAC ratings (kW) sized for the simulated weather, +/- 3 sigma forecast errors and
    the sampled training households' gains."""
    spd, n_smart = config.slots_per_day, params.n
    sd3 = 3.0 * config.temp_forecast_sd_c
    pool_gain = pool_gain_kw
    conds_t = np.concatenate(
        [
            t_out_c - sd3,
            t_out_c + sd3,
            np.tile(t_out_c[:spd] - sd3, len(pool_gain)),
            np.tile(t_out_c[:spd] + sd3, len(pool_gain)),
        ]
    )
    g_pool = np.concatenate([np.broadcast_to(g, (n_smart, spd)) for g in pool_gain], axis=1)
    conds_g = np.concatenate([gain_kw, gain_kw, g_pool, g_pool], axis=1)
    return size_hvac(params, conds_t, conds_g)
