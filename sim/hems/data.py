"""Exogenous data for the homes, from data shipped inside installed packages only.

Sources (nothing is downloaded at run time):

* Weather: a TMY3 file bundled with pvlib (default ``723170TYA.CSV``,
  Greensboro NC, USAF 723170, via ``pvlib.iotools.read_tmy3``). Hourly values
  (hour-ending, averages over the hour) are interpolated linearly to the slot
  midpoints: outdoor dry-bulb temperature (degC), GHI/DNI/DHI (W/m2), wind
  (m/s).
* PV: pvlib solar position, isotropic plane-of-array transposition, Faiman
  cell temperature and the PVWatts DC model (gamma -0.4 %/K), times 14 %
  system losses and a 96 % inverter, clipped at DC/AC ratio 1.2. Profiles in
  kW per kWp for three orientations (tilt 25 deg; azimuth 135, 180, 225 deg).
* Household electric load and occupancy: richardsonpy 0.2 (Richardson et al.
  2008/2010 UK time-use Markov model): number of *active* (at home and awake)
  occupants at 10-min resolution and a minute-level appliance + lighting load,
  with electric water/space heating appliances excluded (``prev_heat_dev``)
  because they are modelled explicitly. richardsonpy draws from Python's global
  ``random``; we seed it per household and restore the global state afterwards.
* Hot-water draws: our own occupancy-driven generator (documented in
  :func:`hot_water_draws`), seeded with numpy.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import random
import sys
from dataclasses import dataclass

import numpy as np

from .config import HEMSConfigError

__all__ = [
    "Weather",
    "load_weather",
    "weather_year",
    "household_days",
    "hot_water_draws",
    "price_forecast_slots",
    "sample_prices",
    "TMY_YEAR",
]

TMY_YEAR = 2021  # TMY timestamps are coerced to this (non-leap) year; Jan 1 2021 is a Friday
ORIENTATIONS_DEG = (135.0, 180.0, 225.0)
TILT_DEG = 25.0


@dataclass(frozen=True)
class Weather:
    """Weather over the simulated slots (arrays of length n_slots).

    ``pv_kw_per_kwp`` has shape (len(ORIENTATIONS_DEG), n_slots).
    """

    slot_s: int
    temp_out_c: np.ndarray
    ghi_w_m2: np.ndarray
    pv_kw_per_kwp: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.temp_out_c)
        for name in ("temp_out_c", "ghi_w_m2", "pv_kw_per_kwp"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape[-1] != n:
                raise HEMSConfigError(f"weather.{name}", f"length {arr.shape[-1]} != {n}")
            if not np.all(np.isfinite(arr)):
                raise HEMSConfigError(f"weather.{name}", "contains NaN or infinite values")
            object.__setattr__(self, name, arr)
        if self.pv_kw_per_kwp.ndim != 2:
            raise HEMSConfigError("weather.pv_kw_per_kwp", "must be 2-D (orientation, slot)")
        if np.any(self.ghi_w_m2 < 0) or np.any(self.pv_kw_per_kwp < 0):
            raise HEMSConfigError("weather.ghi_w_m2", "irradiance and PV must be >= 0")
        if np.any(np.abs(self.temp_out_c) > 70):
            raise HEMSConfigError("weather.temp_out_c", "outdoor temperature outside +/-70 degC")

    @property
    def n_slots(self) -> int:
        return len(self.temp_out_c)

    def days(self, slots_per_day: int, day_indices: list[int] | np.ndarray) -> Weather:
        """Concatenate whole days (0-based indices into this weather) into a new Weather."""
        idx = np.concatenate(
            [np.arange(d * slots_per_day, (d + 1) * slots_per_day) for d in day_indices]
        )
        return Weather(
            self.slot_s, self.temp_out_c[idx], self.ghi_w_m2[idx], self.pv_kw_per_kwp[:, idx]
        )


def _tmy_path(weather_file: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec("pvlib")  # its folder, without importing pvlib
    path = os.path.join(os.path.dirname(spec.origin), "data", weather_file)
    if not os.path.isfile(path):
        raise HEMSConfigError("weather_file", f"{weather_file!r} is not in pvlib's data folder")
    return path


@functools.lru_cache(maxsize=4)
def weather_year(weather_file: str, slot_s: int) -> Weather:
    """Whole TMY3 year at slot resolution (cached in the process and in the set-up cache,
    :mod:`sim.cache`, under the hash of the TMY3 file, ``slot_s``, this code and pvlib's
    version)."""
    from importlib.metadata import version

    from sim.cache import cached_arrays, source_digest

    path = _tmy_path(weather_file)
    with open(path, "rb") as f:
        tmy = np.frombuffer(f.read(), dtype=np.uint8)
    arrays, _ = cached_arrays(
        "weather",
        source_digest([sys.modules[__name__]]) + ":pvlib " + version("pvlib"),
        {"tmy3": tmy, "slot_s": int(slot_s)},
        lambda: _weather_year_arrays(path, slot_s),
    )
    return Weather(slot_s, arrays["temp_out_c"], arrays["ghi_w_m2"], arrays["pv_kw_per_kwp"])


def _weather_year_arrays(path: str, slot_s: int) -> dict[str, np.ndarray]:
    """:func:`weather_year`'s arrays, computed with pvlib."""
    import pandas as pd
    import pvlib

    data, meta = pvlib.iotools.read_tmy3(path, coerce_year=TMY_YEAR, map_variables=True)
    hourly = {
        k: data[k].to_numpy(dtype=float) for k in ("temp_air", "ghi", "dni", "dhi", "wind_speed")
    }
    n_h = len(hourly["ghi"])
    t_hour = np.arange(n_h) + 0.5  # midpoints of the hour-ending averages, h since Jan 1
    spd = 86400 // slot_s
    n = 365 * spd
    t_slot = (np.arange(n) + 0.5) * slot_s / 3600.0
    v = {k: np.interp(t_slot, t_hour, a) for k, a in hourly.items()}
    tz = _dt.timezone(_dt.timedelta(hours=float(meta["TZ"])))
    times = pd.date_range(
        _dt.datetime(TMY_YEAR, 1, 1, tzinfo=tz), periods=n, freq=f"{slot_s}s"
    ) + pd.Timedelta(seconds=slot_s / 2)
    sp = pvlib.solarposition.get_solarposition(
        times, meta["latitude"], meta["longitude"], altitude=meta["altitude"]
    )
    zen = sp["apparent_zenith"].to_numpy()
    up = zen < 90.0
    dni = np.where(up, np.maximum(v["dni"], 0.0), 0.0)
    ghi = np.where(up, np.maximum(v["ghi"], 0.0), 0.0)
    dhi = np.where(up, np.maximum(v["dhi"], 0.0), 0.0)
    pv = []
    for az in ORIENTATIONS_DEG:
        poa = pvlib.irradiance.get_total_irradiance(
            TILT_DEG, az, sp["apparent_zenith"], sp["azimuth"], dni, ghi, dhi, model="isotropic"
        )["poa_global"].to_numpy()
        poa = np.nan_to_num(np.maximum(poa, 0.0))
        t_cell = pvlib.temperature.faiman(poa, v["temp_air"], v["wind_speed"])
        pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, pdc0=1.0, gamma_pdc=-0.004)
        pac = np.clip(np.asarray(pdc) * 0.86 * 0.96, 0.0, 1.0 / 1.2)
        pv.append(pac)
    return {"temp_out_c": v["temp_air"], "ghi_w_m2": ghi, "pv_kw_per_kwp": np.array(pv)}


def load_weather(weather_file: str, start_day: int, n_days: int, slot_s: int) -> Weather:
    """Weather for days ``start_day .. start_day + n_days - 1`` (day of year, 1-based)."""
    spd = 86400 // slot_s
    year = weather_year(weather_file, slot_s)
    return year.days(spd, list(range(start_day - 1, start_day - 1 + n_days)))


def _weekday(day_of_year: int) -> int:
    """ISO weekday (1 = Monday .. 7 = Sunday) of a day of the TMY year."""
    return (_dt.date(TMY_YEAR, 1, 1) + _dt.timedelta(days=day_of_year - 1)).isoweekday()


def household_days(
    seed: int, n_occupants: int, start_day: int, n_days: int, ghi_w_m2: np.ndarray, slot_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """One richardsonpy household over ``n_days`` days.

    Returns ``(load_kw, active_occupants)``, both of length n_days * slots per day:
    the non-controllable electric load (kW, slot mean) and the mean number of
    active occupants in the slot (ground truth for privacy studies).
    ``ghi_w_m2`` (slot resolution) drives the lighting model. The simulation is seeded
    (Python's ``random``, the only source richardsonpy draws from), so its result is kept in
    the set-up cache (:mod:`sim.cache`) under the hash of the arguments and this code.
    """
    from sim.cache import cached_arrays

    if not 1 <= n_occupants <= 5:
        raise HEMSConfigError("occupants", f"richardsonpy supports 1..5, got {n_occupants}")
    ghi = np.asarray(ghi_w_m2, dtype=float)
    inputs = (int(seed), int(n_occupants), int(start_day), int(n_days), ghi, int(slot_s))
    arrays, _ = cached_arrays(
        "household",
        _household_code(),
        inputs,
        lambda: dict(
            zip(
                ("load_kw", "active"),
                _simulate_household(*inputs),
                strict=True,
            )
        ),
    )
    return arrays["load_kw"], arrays["active"]


@functools.cache
def _household_code() -> str:
    from importlib.metadata import version

    from sim.cache import source_digest

    return source_digest([sys.modules[__name__]]) + ":richardsonpy " + version("richardsonpy")


def _simulate_household(
    seed: int, n_occupants: int, start_day: int, n_days: int, ghi_w_m2: np.ndarray, slot_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`household_days` without the cache."""
    import richardsonpy
    import richardsonpy.classes.appliance as app_model
    import richardsonpy.classes.lighting as light_model
    import richardsonpy.classes.occupancy as occ_model
    import richardsonpy.classes.stochastic_el_load_wrapper as wrapper
    from richardsonpy.classes.electric_load import ElectricLoad

    spd = 86400 // slot_s
    per_slot_min = slot_s // 60
    src = os.path.dirname(richardsonpy.__file__)
    saved = random.getstate()
    try:
        random.seed(seed)
        occ = occ_model.Occupancy(
            number_occupants=n_occupants, initial_day=_weekday(start_day), nb_days=n_days
        )
        annual = ElectricLoad.standard_consumption["SFH"][n_occupants]
        apps = app_model.Appliances(
            os.path.join(src, "inputs", "Appliances.csv"),
            annual_consumption=0.91 * annual,
            randomize_appliances=True,
            prev_heat_dev=True,
        )
        lights = light_model.load_lighting_profile(
            filename=os.path.join(src, "inputs", "LightBulbs.csv"), index=0
        )
        profile = wrapper.ElectricityProfile(apps, lights)
        minutes = np.arange(1440)
        slot_minutes = (np.arange(spd) + 0.5) * per_slot_min
        load_w = []
        for d in range(n_days):
            ghi_day = np.interp(minutes, slot_minutes, ghi_w_m2[d * spd : (d + 1) * spd])
            weekend = _weekday(start_day + d) >= 6
            total, _, _ = profile.power_sim(
                irradiation=ghi_day,
                weekend=weekend,
                day=start_day + d,
                occupancy=occ.occupancy[144 * d : 144 * (d + 1)],
            )
            load_w.append(np.asarray(total, dtype=float))
    finally:
        random.setstate(saved)
    load_kw = np.concatenate(load_w).reshape(-1, per_slot_min).mean(axis=1) / 1000.0
    occ_min = np.repeat(np.asarray(occ.occupancy[: 144 * n_days], dtype=float), 10)
    active = occ_min.reshape(-1, per_slot_min).mean(axis=1)
    return load_kw, active


def _draw_weight(hour: np.ndarray) -> np.ndarray:
    """Relative hot-water use per active occupant by time of day (morning and evening peaks)."""
    return (
        0.3
        + 1.0 * np.exp(-0.5 * ((hour - 7.0) / 1.0) ** 2)
        + 0.7 * np.exp(-0.5 * ((hour - 19.5) / 1.5) ** 2)
    )


def hot_water_draws(
    rng: np.random.Generator,
    active_occupants: np.ndarray,
    litres_per_person_day: np.ndarray,
    n_occupants: np.ndarray,
    slot_s: int,
    max_litres_per_slot: np.ndarray,
) -> np.ndarray:
    """Hot-water draws (litres taken from the tank per slot), shape (homes, slots).

    Expected volume per slot is proportional to active occupants times a
    time-of-day weight, scaled so that a day with the weight's average active
    occupancy gives ``litres_per_person_day * n_occupants``. Draws come in
    events (Poisson count, mean 8 L, gamma-distributed volumes, shape 2); the
    volume per slot is capped at ``max_litres_per_slot`` (what the element can
    reheat within one slot), so that the tank band is always recoverable.
    """
    active = np.atleast_2d(active_occupants)
    n_h, n = active.shape
    spd = 86400 // slot_s
    hour = ((np.arange(n) % spd) + 0.5) * slot_s / 3600.0
    w = _draw_weight(hour)[None, :]
    per_day = (litres_per_person_day * n_occupants)[:, None]
    norm = (w[:, :spd] * 0.5 * n_occupants[:, None]).sum(axis=1, keepdims=True)
    expected = per_day * active * w / np.maximum(norm, 1e-9)
    mean_event = 8.0
    counts = rng.poisson(expected / mean_event)
    vol = rng.gamma(shape=2.0 * np.maximum(counts, 1), scale=mean_event / 2.0)
    vol = np.where(counts > 0, vol, 0.0)
    return np.minimum(vol, max_litres_per_slot[:, None])


def price_forecast_slots(hourly: tuple[float, ...] | np.ndarray, slot_s: int) -> np.ndarray:
    """Hourly price profile ($/kWh) mapped to the slots of one day (step-wise)."""
    spd = 86400 // slot_s
    hour = ((np.arange(spd) + 0.5) * slot_s / 3600.0).astype(int)
    return np.asarray(hourly, dtype=float)[hour]


def sample_prices(
    rng: np.random.Generator,
    hourly: tuple[float, ...] | np.ndarray,
    noise: float,
    n_days: int,
    slot_s: int,
) -> np.ndarray:
    """Price scenarios ($/kWh), shape (n_days, slots per day): the hourly forecast
    times mean-one lognormal factors drawn per hour (sigma = ``noise``)."""
    base = np.asarray(hourly, dtype=float)
    factors = rng.lognormal(-0.5 * noise**2, noise, (n_days, 24))
    spd = 86400 // slot_s
    hour = ((np.arange(spd) + 0.5) * slot_s / 3600.0).astype(int)
    return (base[None, :] * factors)[:, hour]
