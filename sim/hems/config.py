"""Validated configuration of a HEMS fleet.

Everything is a frozen dataclass that validates itself on construction and
raises :class:`HEMSConfigError` naming the offending parameter (dotted path,
e.g. ``ranges.battery_kwh``). ``FleetConfig.from_dict`` builds one from plain
YAML/JSON data (unknown keys are refused).

Units are in the field names: ``_kw`` kW, ``_kwh`` kWh, ``_c`` degC,
``_l`` litres, ``_usd_per_kwh`` $/kWh, ``_s`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from sim.constants import DEFAULT_BATTERY_EXPORT
from sim.errors import BlockhemsError

__all__ = ["HEMSConfigError", "Range", "ApplianceRanges", "FleetConfig", "DEFAULT_TOU_HOURLY"]


class HEMSConfigError(BlockhemsError, ValueError):
    """A HEMS parameter or input is invalid. ``param`` (also ``key``) names it."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}", key=param)


def _finite(param: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise HEMSConfigError(param, f"must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise HEMSConfigError(param, f"must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class Range:
    """A closed interval [lo, hi]; per-home values are drawn uniformly from it."""

    lo: float
    hi: float

    def checked(
        self,
        param: str,
        minimum: float | None = None,
        maximum: float | None = None,
        strict_min: bool = False,
    ) -> Range:
        lo, hi = _finite(f"{param}.lo", self.lo), _finite(f"{param}.hi", self.hi)
        if lo > hi:
            raise HEMSConfigError(param, f"range is inverted (lo={lo} > hi={hi})")
        if minimum is not None:
            if strict_min and lo <= minimum:
                raise HEMSConfigError(param, f"must be > {minimum}, got lo={lo}")
            if lo < minimum:
                raise HEMSConfigError(param, f"must be >= {minimum}, got lo={lo}")
        if maximum is not None and hi > maximum:
            raise HEMSConfigError(param, f"must be <= {maximum}, got hi={hi}")
        return Range(lo, hi)

    @classmethod
    def parse(cls, param: str, value: Any) -> Range:
        if isinstance(value, Range):
            return value
        if isinstance(value, dict):
            if set(value) != {"lo", "hi"}:
                raise HEMSConfigError(param, f"needs keys lo and hi, got {sorted(value)}")
            return cls(value["lo"], value["hi"])
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return cls(value[0], value[1])
        if isinstance(value, (int, float)):
            return cls(value, value)
        raise HEMSConfigError(param, f"must be [lo, hi], got {value!r}")


@dataclass(frozen=True)
class ApplianceRanges:
    """Ranges from which each smart home's appliance parameters are drawn.

    Thermal model of the house (1R1C): ``r_c_per_kw`` (degC/kW, 1/UA) and
    ``c_kwh_per_c`` (kWh/degC). The HVAC is a heat pump that heats or cools with
    the same ``hvac_cop``; its electric rating is ``hvac_kw`` but is raised per
    home, if needed, to hold the comfort band in the simulated weather (design
    sizing, see ``appliances.size_hvac``).
    Comfort band: ``t_set_c`` +/- ``t_halfband_c``. Tank band:
    [``tank_low_c``, ``tank_high_c``].
    """

    pv_kwp: Range = Range(3.0, 7.0)
    battery_kwh: Range = Range(5.0, 13.5)
    battery_kw: Range = Range(2.5, 5.0)
    battery_eff: Range = Range(0.92, 0.97)
    r_c_per_kw: Range = Range(2.5, 4.0)
    c_kwh_per_c: Range = Range(2.5, 5.0)
    hvac_kw: Range = Range(2.5, 4.0)
    hvac_cop: Range = Range(2.8, 3.8)
    t_set_c: Range = Range(21.0, 23.0)
    t_halfband_c: Range = Range(1.0, 2.0)
    tank_l: Range = Range(150.0, 300.0)
    wh_kw: Range = Range(3.0, 4.5)
    wh_ua_kw_per_c: Range = Range(0.0015, 0.003)
    tank_low_c: Range = Range(45.0, 50.0)
    tank_high_c: Range = Range(57.0, 65.0)
    hot_water_l_per_person_day: Range = Range(30.0, 50.0)
    occupants: Range = Range(1, 5)
    power_factor: Range = Range(0.9, 0.98)

    def __post_init__(self) -> None:
        spec: dict[str, tuple[float | None, float | None, bool]] = {
            "pv_kwp": (0.0, None, False),
            "battery_kwh": (0.0, None, True),
            "battery_kw": (0.0, None, True),
            "battery_eff": (0.0, 1.0, True),
            "r_c_per_kw": (0.0, None, True),
            "c_kwh_per_c": (0.0, None, True),
            "hvac_kw": (0.0, None, False),
            "hvac_cop": (0.0, None, True),
            "t_set_c": (5.0, 35.0, False),
            "t_halfband_c": (0.0, 10.0, True),
            "tank_l": (0.0, None, True),
            "wh_kw": (0.0, None, True),
            "wh_ua_kw_per_c": (0.0, None, False),
            "tank_low_c": (20.0, 95.0, False),
            "tank_high_c": (20.0, 95.0, False),
            "hot_water_l_per_person_day": (0.0, None, False),
            "occupants": (1.0, 5.0, False),
            "power_factor": (0.0, 1.0, True),
        }
        for name, (mn, mx, strict) in spec.items():
            r = Range.parse(f"ranges.{name}", getattr(self, name))
            object.__setattr__(self, name, r.checked(f"ranges.{name}", mn, mx, strict))
        if self.tank_low_c.hi + 2.0 > self.tank_high_c.lo:
            raise HEMSConfigError(
                "ranges.tank_low_c",
                f"tank comfort band inverted or narrower than 2 degC "
                f"(tank_low_c.hi={self.tank_low_c.hi}, tank_high_c.lo={self.tank_high_c.lo})",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApplianceRanges:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise HEMSConfigError(f"ranges.{sorted(unknown)[0]}", "unknown parameter")
        return cls(**{k: Range.parse(f"ranges.{k}", v) for k, v in data.items()})


# Hourly time-of-use price forecast in $/kWh (hour 0..23): night 0.08, day 0.12,
# evening peak 16-21 h 0.28. The HEMS uses it as its expectation of future prices.
DEFAULT_TOU_HOURLY: tuple[float, ...] = (
    (0.08,) * 6 + (0.12,) * 10 + (0.28,) * 5 + (0.12,) * 2 + (0.08,)
)


@dataclass(frozen=True)
class FleetConfig:
    """Configuration of a fleet of homes (smart HEMS homes and ordinary homes).

    ``start_day`` is the day of year (1..365) of the TMY3 weather file
    ``weather_file`` (a file name in pvlib's bundled data folder) on which the
    simulation starts; ``n_days`` days are simulated. ``load_profile_pool``
    (None = one stochastic household per home) lets homes share richardsonpy
    households to build large fleets fast (about 50 ms per household-day): at
    most ``load_profile_pool`` distinct households per occupant count (1..5).

    Policy and training: ``price_forecast_usd_per_kwh`` (24 hourly values) is
    the HEMS's expectation of prices; training samples ``n_train_days`` days,
    each with ``n_price_samples`` price scenarios (hourly lognormal factors,
    sigma ``price_noise``) and an outdoor-temperature forecast error of sigma
    ``temp_forecast_sd_c``; value functions have ``n_state_points`` nodes per
    state. ``retrain_daily`` retrains at the first slot of each simulated
    day with that day's forecast. ``battery_degradation_usd_per_kwh`` is
    charged on battery throughput; the usable SOC range is
    [``soc_min``, ``soc_max``] of the capacity. ``battery_export`` False
    forbids feeding battery energy to the grid (a common interconnection
    rule): the battery then discharges at most the home's non-controllable
    load minus PV. The value functions are trained as if the battery could
    export; that overstates stored energy only when the home's own evening
    load is smaller than what the battery holds.
    """

    seed: int = 0
    n_homes: int = 10
    smart_share: float = 1.0
    slot_s: int = 900
    start_day: int = 196
    n_days: int = 1
    weather_file: str = "723170TYA.CSV"
    ranges: ApplianceRanges = field(default_factory=ApplianceRanges)
    price_forecast_usd_per_kwh: tuple[float, ...] = DEFAULT_TOU_HOURLY
    price_noise: float = 0.15
    temp_forecast_sd_c: float = 1.5
    retrain_daily: bool = True
    battery_degradation_usd_per_kwh: float = 0.02
    soc_min: float = 0.1
    soc_max: float = 0.95
    battery_export: bool = DEFAULT_BATTERY_EXPORT
    n_train_days: int = 6
    n_price_samples: int = 4
    n_state_points: int = 31
    load_profile_pool: int | None = None

    def __post_init__(self) -> None:
        def integer(name: str, lo: int, hi: int | None = None) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise HEMSConfigError(name, f"must be an integer, got {v!r}")
            if v < lo or (hi is not None and v > hi):
                bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
                raise HEMSConfigError(name, f"must be {bound}, got {v}")

        integer("seed", 0)
        integer("n_homes", 1)
        integer("slot_s", 60, 86400)
        if self.slot_s % 60 or 86400 % self.slot_s:
            raise HEMSConfigError(
                "slot_s", f"must be a multiple of 60 s dividing one day, got {self.slot_s}"
            )
        integer("start_day", 1, 365)
        integer("n_days", 1, 365)
        if self.start_day + self.n_days - 1 > 365:
            raise HEMSConfigError("n_days", "start_day + n_days - 1 must be <= 365")
        integer("n_train_days", 1, 60)
        integer("n_price_samples", 1, 100)
        integer("n_state_points", 5, 401)
        if self.load_profile_pool is not None:
            integer("load_profile_pool", 1)
        share = _finite("smart_share", self.smart_share)
        if not 0.0 <= share <= 1.0:
            raise HEMSConfigError("smart_share", f"must be in [0, 1], got {share}")
        noise = _finite("price_noise", self.price_noise)
        if not 0.0 <= noise <= 1.0:
            raise HEMSConfigError("price_noise", f"must be in [0, 1], got {noise}")
        sd = _finite("temp_forecast_sd_c", self.temp_forecast_sd_c)
        if not 0.0 <= sd <= 10.0:
            raise HEMSConfigError("temp_forecast_sd_c", f"must be in [0, 10], got {sd}")
        for flag in ("retrain_daily", "battery_export"):
            if not isinstance(getattr(self, flag), bool):
                raise HEMSConfigError(flag, "must be true or false")
        if _finite("battery_degradation_usd_per_kwh", self.battery_degradation_usd_per_kwh) < 0:
            raise HEMSConfigError("battery_degradation_usd_per_kwh", "must be >= 0")
        smin, smax = _finite("soc_min", self.soc_min), _finite("soc_max", self.soc_max)
        if not 0.0 <= smin < smax <= 1.0:
            raise HEMSConfigError(
                "soc_min", f"need 0 <= soc_min < soc_max <= 1, got {smin}, {smax}"
            )
        prices = tuple(self.price_forecast_usd_per_kwh)
        if len(prices) != 24:
            raise HEMSConfigError(
                "price_forecast_usd_per_kwh", f"needs 24 hourly values, got {len(prices)}"
            )
        for h, p in enumerate(prices):
            _finite(f"price_forecast_usd_per_kwh[{h}]", p)
        object.__setattr__(self, "price_forecast_usd_per_kwh", tuple(float(p) for p in prices))
        if not isinstance(self.ranges, ApplianceRanges):
            raise HEMSConfigError("ranges", "must be an ApplianceRanges")
        if not isinstance(self.weather_file, str) or not self.weather_file:
            raise HEMSConfigError("weather_file", "must be a file name in pvlib's data folder")

    @property
    def slots_per_day(self) -> int:
        return 86400 // self.slot_s

    @property
    def dt_h(self) -> float:
        """Slot length in hours."""
        return self.slot_s / 3600.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FleetConfig:
        """Build from plain data (e.g. a scenario YAML section); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise HEMSConfigError(sorted(unknown)[0], "unknown parameter")
        kw = dict(data)
        if "ranges" in kw and isinstance(kw["ranges"], dict):
            kw["ranges"] = ApplianceRanges.from_dict(kw["ranges"])
        if "price_forecast_usd_per_kwh" in kw:
            kw["price_forecast_usd_per_kwh"] = tuple(kw["price_forecast_usd_per_kwh"])
        return cls(**kw)
