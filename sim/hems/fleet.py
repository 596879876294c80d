"""A fleet of homes: smart (HEMS) homes and ordinary homes, evaluated with numpy.

Per slot the co-simulation calls, in this order:

1. ``lmin, lmax = fleet.compute_ranges(slot, p_low, p_high)`` with the price
   band in $/kWh (scalars or arrays over homes). Smart homes solve their
   one-step ADP problem at ``p_high`` (-> Lmin) and ``p_low`` (-> Lmax);
   ordinary homes return their load forecast for both. kW, net grid import
   (negative = export).
2. ``p_kw = fleet.dispatch(slot, cap_kw)`` with the dispatched cap
   ``lambda * Lmax + (1 - lambda) * Lmin`` (kW, per home). Smart homes re-plan
   the slot at the band's ``p_low`` (or at ``price`` if given) subject to
   ``import <= cap``; the state advances one slot. ``fleet.last_q_kvar`` holds
   the reactive power.

Cap semantics: if ``cap >= Lmin`` the comfort bands hold and ``import <= cap``
(tolerance ``CAP_TOL_KW``); a binding cap is used fully (import = cap) by the
Lagrangian re-plan of :func:`sim.hems.policy.capped_response`. If ``cap`` is
below Lmin the home still keeps comfort while it can (the smallest
comfort-keeping import is usually below Lmin). Below that floor the cap has
priority: the home discharges its battery fully, then sheds water-heater and
HVAC power (in that order) down to the cap, and records the resulting comfort
violation (degC) in ``comfort_violation_c``; if even zero controllable load
cannot meet the cap (non-controllable load minus PV minus maximum discharge
exceeds it) the excess is recorded in ``cap_violation_kw``. Non-controllable
load and PV are never curtailed.

Forecasts: each home knows its next slot's non-controllable load, PV, internal
gains and hot-water draw exactly (one-slot-ahead perfect forecast); beyond
the next slot it only uses the trained value functions.

Records (``fleet.records[name]``, arrays (homes, slots), NaN where not
applicable): import_kw, q_kvar, pv_kw (output after curtailment), pv_curtailed_kw,
load_kw, battery_kw, hvac_kw, wh_kw, soc_kwh, t_in_c, tank_c (states at the end of the
slot), comfort_violation_c, cap_kw, cap_violation_kw, lmin_kw, lmax_kw, price_usd_per_kwh, draw_l.
``fleet.occupancy`` (homes, slots) is the ground-truth mean number of active
occupants per slot for every home.
"""

from __future__ import annotations

import numpy as np

from sim.errors import BlockhemsError

from .appliances import (
    GAIN_PER_OCCUPANT_KW,
    LOAD_HEAT_FRACTION,
    SOLAR_APERTURE_M2,
    SmartHomeParams,
    battery_step,
    hvac_mode,
    hvac_step,
    max_draw_litres,
    sample_params,
    size_hvac,
    wh_step,
)
from .config import FleetConfig, HEMSConfigError
from .data import (
    Weather,
    hot_water_draws,
    household_days,
    load_weather,
    price_forecast_slots,
    sample_prices,
)
from .policy import (
    ADPPolicy,
    ExoSlot,
    MyopicPolicy,
    Policy,
    TrainingData,
    ValueFunctions,
    build_options,
    capped_response,
    respond,
    state_nodes,
    train_value_functions,
)

__all__ = ["HEMSFleet", "HEMSStateError", "CAP_TOL_KW", "RECORD_NAMES", "smart_homes"]

CAP_TOL_KW = 1e-6
VIOLATION_TOL_C = 1e-9  # comfort violations below this (float rounding) are recorded as 0
RECORD_NAMES = (
    "import_kw",
    "q_kvar",
    "pv_kw",
    "pv_curtailed_kw",
    "load_kw",
    "battery_kw",
    "hvac_kw",
    "wh_kw",
    "soc_kwh",
    "t_in_c",
    "tank_c",
    "comfort_violation_c",
    "cap_kw",
    "cap_violation_kw",
    "lmin_kw",
    "lmax_kw",
    "price_usd_per_kwh",
    "draw_l",
)
TRAIN_POOL_HOUSEHOLDS = 8
TRAIN_GHI_FACTOR_MIN, TRAIN_GHI_FACTOR_MAX = 0.5, 1.2


def _seeds(config: FleetConfig) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(config.seed).spawn(7)


def smart_homes(config: FleetConfig) -> np.ndarray:
    """Which homes of a fleet built from `config` are HEMS homes (bool per home), without
    building the fleet (a fleet's profiles and training take seconds to minutes)."""
    h = config.n_homes
    smart = np.zeros(h, dtype=bool)
    smart[
        np.random.default_rng(_seeds(config)[0]).permutation(h)[
            : int(round(config.smart_share * h))
        ]
    ] = True
    return smart


class HEMSStateError(BlockhemsError, RuntimeError):
    """A fleet method was called out of order (e.g. for a slot other than the current one)."""


def _gains(load_kw: np.ndarray, active: np.ndarray, ghi: np.ndarray) -> np.ndarray:
    return (
        LOAD_HEAT_FRACTION * load_kw
        + GAIN_PER_OCCUPANT_KW * active
        + SOLAR_APERTURE_M2 * ghi / 1000.0
    )


class HEMSFleet:
    """Homes of one feeder with seeded parameters, data and ADP policies.

    ``weather`` overrides the TMY3 weather (must cover ``n_days`` days at
    ``slot_s``); ``policy`` is ``"adp"`` (default) or ``"myopic"``.
    """

    def __init__(
        self, config: FleetConfig, weather: Weather | None = None, policy: str = "adp"
    ) -> None:
        if not isinstance(config, FleetConfig):
            raise HEMSConfigError("config", "must be a FleetConfig")
        if policy not in ("adp", "myopic"):
            raise HEMSConfigError("policy", f"must be 'adp' or 'myopic', got {policy!r}")
        self.config = cfg = config
        self.dt_h = cfg.dt_h
        self.slots_per_day = spd = cfg.slots_per_day
        self.n_slots = n = spd * cfg.n_days
        self.n_homes = h = cfg.n_homes
        if weather is None:
            weather = load_weather(cfg.weather_file, cfg.start_day, cfg.n_days, cfg.slot_s)
        if not isinstance(weather, Weather):
            raise HEMSConfigError("weather", "must be a sim.hems.data.Weather")
        if weather.slot_s != cfg.slot_s or weather.n_slots != n:
            raise HEMSConfigError(
                "weather",
                f"needs {n} slots of {cfg.slot_s} s, got {weather.n_slots} of {weather.slot_s} s",
            )
        self.weather = weather
        s_smart, s_occ, s_hh, s_par, s_draw, s_train, s_pf = _seeds(cfg)
        self.smart = smart_homes(cfg)
        n_smart = int(self.smart.sum())
        self.smart_idx = np.flatnonzero(self.smart)
        occ_r = cfg.ranges.occupants
        self.n_occupants = np.random.default_rng(s_occ).integers(
            int(np.ceil(occ_r.lo)), int(np.floor(occ_r.hi)) + 1, h
        )
        self.power_factor = np.random.default_rng(s_par).uniform(
            cfg.ranges.power_factor.lo, cfg.ranges.power_factor.hi, h
        )
        # household load and occupancy (richardsonpy), one per home or from a pool
        hh_seeds = np.random.default_rng(s_hh).integers(0, 2**31 - 1, h)
        self.load_kw = np.zeros((h, n))
        self.occupancy = np.zeros((h, n))
        pool = cfg.load_profile_pool
        if pool is None:
            for i in range(h):
                self.load_kw[i], self.occupancy[i] = household_days(
                    int(hh_seeds[i]),
                    int(self.n_occupants[i]),
                    cfg.start_day,
                    cfg.n_days,
                    weather.ghi_w_m2,
                    cfg.slot_s,
                )
        else:
            cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
            for i in range(h):
                key = (int(self.n_occupants[i]), int(hh_seeds[i] % pool))
                if key not in cache:
                    cache[key] = household_days(
                        key[1] * 7919 + key[0],
                        key[0],
                        cfg.start_day,
                        cfg.n_days,
                        weather.ghi_w_m2,
                        cfg.slot_s,
                    )
                self.load_kw[i], self.occupancy[i] = cache[key]
        # smart-home appliances
        self.params: SmartHomeParams = sample_params(np.random.default_rng(s_par), n_smart, cfg)
        p = self.params
        si = self.smart_idx
        self.pv_kw = np.zeros((h, n))
        self.pv_kw[si] = p.pv_kwp[:, None] * weather.pv_kw_per_kwp[p.pv_orientation]
        self.gain_kw = _gains(self.load_kw[si], self.occupancy[si], weather.ghi_w_m2[None, :])
        self.draw_l = np.zeros((h, n))
        self._draw_rng = np.random.default_rng(s_draw)
        self.draw_l[si] = hot_water_draws(
            self._draw_rng,
            self.occupancy[si],
            p.hot_water_l_per_person_day,
            self.n_occupants[si],
            cfg.slot_s,
            max_draw_litres(p, self.dt_h),
        )
        self.t_out_c = weather.temp_out_c
        self.price_forecast = price_forecast_slots(cfg.price_forecast_usd_per_kwh, cfg.slot_s)
        self._train_seed = s_train
        self.training_data: TrainingData | None = None
        self._trained_day: int | None = None
        if n_smart:
            # size the HVAC for the simulated weather, +/- 3 sigma forecast errors and
            # the sampled training households' gains
            sd3 = 3.0 * cfg.temp_forecast_sd_c
            pool_gain = self._pool()[2]
            conds_t = np.concatenate(
                [
                    self.t_out_c - sd3,
                    self.t_out_c + sd3,
                    np.tile(self.t_out_c[:spd] - sd3, len(pool_gain)),
                    np.tile(self.t_out_c[:spd] + sd3, len(pool_gain)),
                ]
            )
            g_pool = np.concatenate([np.broadcast_to(g, (n_smart, spd)) for g in pool_gain], axis=1)
            conds_g = np.concatenate([self.gain_kw, self.gain_kw, g_pool, g_pool], axis=1)
            p.hvac_kw = size_hvac(p, conds_t, conds_g)
        self.mode = hvac_mode(p, self.t_out_c[None, :], self.gain_kw) if n_smart else None
        self.nodes = state_nodes(p, cfg.n_state_points)
        self.e0_kwh = 0.5 * (p.e_min_kwh + p.e_max_kwh)
        self.terminal_usd_per_kwh = np.max(self.price_forecast) / p.bat_eff
        self.value_functions: ValueFunctions | None = None
        self.training_seconds: float | None = None
        self._policy_name = policy
        self.policy: Policy | None = None
        self.reset()

    # ------------------------------------------------------------ setup
    def _pool(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training households (richardsonpy, seeded): load, occupancy, the largest
        gains each could cause (for sizing), occupant counts."""
        if not hasattr(self, "_pool_cache"):
            cfg = self.config
            spd = self.slots_per_day
            ghi = self.weather.ghi_w_m2[:spd]
            loads, occs, n_occ = [], [], []
            for j in range(TRAIN_POOL_HOUSEHOLDS):
                n = 1 + j % 5
                lo, oc = household_days(
                    10_000 + 31 * cfg.seed + j, n, cfg.start_day, 1, ghi, cfg.slot_s
                )
                loads.append(lo)
                occs.append(oc)
                n_occ.append(n)
            loads, occs = np.array(loads), np.array(occs)
            occ_max = self.n_occupants.max()
            gmax = [
                _gains(
                    ld * np.sqrt(occ_max), np.full(spd, float(occ_max)), TRAIN_GHI_FACTOR_MAX * ghi
                )
                for ld in loads
            ]
            self._pool_cache = (loads, occs, np.array(gmax), np.array(n_occ))
        return self._pool_cache

    def _training_data(self, day: int) -> TrainingData:
        """Sampled days for training the value functions of simulated day ``day``.

        Prices: hourly lognormal noise around the forecast. Outdoor temperature:
        the day's weather plus an AR(1) forecast error (sigma ``temp_forecast_sd_c``,
        hourly correlation 0.9). Irradiance: the day's GHI times a random daily
        factor (cloudiness). Loads, occupancy and hot-water draws: pooled
        richardsonpy households scaled to each home's occupant count.
        """
        cfg = self.config
        rng = np.random.default_rng([*self._train_seed.generate_state(2), day])
        k, spd = cfg.n_train_days, self.slots_per_day
        p = self.params
        si = self.smart_idx
        m = cfg.n_price_samples
        price = sample_prices(
            rng, cfg.price_forecast_usd_per_kwh, cfg.price_noise, k * m, cfg.slot_s
        ).reshape(k, m, spd)
        day_slots = slice(day * spd, (day + 1) * spd)
        phi = 0.9**self.dt_h
        err = np.empty((k, spd))
        err[:, 0] = rng.normal(0.0, cfg.temp_forecast_sd_c, k)
        for t in range(1, spd):
            err[:, t] = phi * err[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(
                0.0, cfg.temp_forecast_sd_c, k
            )
        t_out = self.t_out_c[day_slots][None, :] + err
        ghi = self.weather.ghi_w_m2[day_slots][None, :] * rng.uniform(
            TRAIN_GHI_FACTOR_MIN, TRAIN_GHI_FACTOR_MAX, (k, 1)
        )
        pool_load, pool_occ, _, pool_n = self._pool()
        pick = rng.integers(0, TRAIN_POOL_HOUSEHOLDS, (k, len(si)))
        scale = self.n_occupants[si][None, :] / pool_n[pick]
        gain = np.empty((k, len(si), spd))
        draw = np.empty((k, len(si), spd))
        mode = np.empty((k, len(si), spd))
        for d in range(k):
            ld = pool_load[pick[d]] * np.sqrt(scale[d])[:, None]
            oc = np.minimum(pool_occ[pick[d]] * scale[d][:, None], self.n_occupants[si][:, None])
            gain[d] = _gains(ld, oc, ghi[d][None, :])
            draw[d] = hot_water_draws(
                rng,
                oc,
                p.hot_water_l_per_person_day,
                self.n_occupants[si],
                cfg.slot_s,
                max_draw_litres(p, self.dt_h),
            )
            mode[d] = hvac_mode(p, t_out[d][None, :], gain[d])
        return TrainingData(price=price, t_out_c=t_out, gain_kw=gain, mode=mode, draw_l=draw)

    def train(self, day: int | None = None) -> float:
        """Train the ADP value functions for simulated day ``day`` (default: the day of
        the current slot) by a backward DP over sampled days; returns seconds.

        With ``retrain_daily`` the fleet calls this itself at the first slot of
        each new day (the value functions use that day's weather forecast).
        """
        if not len(self.smart_idx):
            self.training_seconds = 0.0
            return 0.0
        cfg = self.config
        day = self.slot // self.slots_per_day if day is None else day
        self.training_data = self._training_data(day)
        self._trained_day = day
        self.value_functions, self.training_seconds = train_value_functions(
            self.params,
            self.training_data,
            self.dt_h,
            cfg.n_state_points,
            cfg.battery_degradation_usd_per_kwh,
            self.terminal_usd_per_kwh,
            self.e0_kwh,
        )
        if self._policy_name == "adp":
            self.policy = ADPPolicy(self.value_functions)
        return self.training_seconds

    def use_policy(self, name: str) -> None:
        """Switch between ``"adp"`` and ``"myopic"`` (the state is not reset)."""
        if name == "adp":
            if self.value_functions is None:
                self.train()
            self.policy = ADPPolicy(self.value_functions)
        elif name == "myopic":
            p = self.params
            self.policy = MyopicPolicy(float(np.mean(self.price_forecast)) * p.bat_eff)
        else:
            raise HEMSConfigError("policy", f"must be 'adp' or 'myopic', got {name!r}")
        self._policy_name = name

    def reset(self) -> None:
        """Back to slot 0 with initial states (SOC mid-range, temperatures mid-band)."""
        p = self.params
        self.slot = 0
        self.soc_kwh = self.e0_kwh.copy()
        self.t_in_c = 0.5 * (p.t_low_c + p.t_high_c)
        self.tank_c = 0.5 * (p.tank_low_c + p.tank_high_c)
        self.records = {k: np.full((self.n_homes, self.n_slots), np.nan) for k in RECORD_NAMES}
        self._band: tuple[np.ndarray, np.ndarray] | None = None
        self._options = None
        self.last_p_kw = np.zeros(self.n_homes)
        self.last_q_kvar = np.zeros(self.n_homes)
        if self._policy_name == "myopic":
            self.use_policy("myopic")
        elif self.value_functions is not None:
            self.policy = ADPPolicy(self.value_functions)

    # ------------------------------------------------------------ per slot
    def _check_slot(self, slot: int) -> None:
        if slot != self.slot:
            raise HEMSStateError(f"slot {slot} requested but the fleet is at slot {self.slot}")
        if not 0 <= slot < self.n_slots:
            raise HEMSStateError(f"slot {slot} outside 0..{self.n_slots - 1}")

    def _prices(self, name: str, value: np.ndarray | float) -> np.ndarray:
        arr = np.broadcast_to(np.asarray(value, dtype=float), (self.n_homes,)).copy()
        if not np.all(np.isfinite(arr)):
            raise HEMSConfigError(name, "prices must be finite")
        return arr

    def base_kw(self, slot: int) -> np.ndarray:
        """Non-controllable load minus PV (kW) per home: the ordinary homes' forecast."""
        return self.load_kw[:, slot] - self.pv_kw[:, slot]

    def _smart_options(self, slot: int):
        day = slot // self.slots_per_day
        if self._policy_name == "adp" and (
            self.value_functions is None or (self.config.retrain_daily and self._trained_day != day)
        ):
            self.train(day)
        if self.policy is None:
            self.use_policy(self._policy_name)
        si = self.smart_idx
        exo = ExoSlot(
            t_out_c=self.t_out_c[slot],
            gain_kw=self.gain_kw[:, slot],
            mode=self.mode[:, slot],
            draw_l=self.draw_l[si, slot],
            # without export the battery only covers the home's own net load (load minus PV)
            max_discharge_kw=None
            if self.config.battery_export
            else np.maximum(self.base_kw(slot)[si], 0.0),
            pv_kw=self.pv_kw[si, slot],
        )
        state = {"bat": self.soc_kwh, "hvac": self.t_in_c, "wh": self.tank_c}
        cfg = self.config
        return build_options(
            self.params,
            state,
            exo,
            self.policy,
            slot % self.slots_per_day,
            self.dt_h,
            self.nodes,
            cfg.battery_degradation_usd_per_kwh,
        )

    def compute_ranges(
        self,
        slot: int,
        p_low: np.ndarray | float,
        p_high: np.ndarray | float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Lmin, Lmax) in kW per home for ``slot`` from the price band in $/kWh."""
        self._check_slot(slot)
        lo, hi = self._prices("p_low", p_low), self._prices("p_high", p_high)
        if np.any(lo > hi):
            raise HEMSConfigError("p_low", "must be <= p_high")
        base = self.base_kw(slot)
        lmin, lmax = base.copy(), base.copy()
        if len(self.smart_idx):
            si = self.smart_idx
            opts = self._smart_options(slot)
            for price, out in ((hi[si], lmin), (lo[si], lmax)):
                idx = respond(opts, price, self.dt_h)
                rows = np.arange(len(si))
                out[si] += sum(opts[d].x[rows, idx[d]] for d in opts)
            self._options = opts
        self._band = (lo, hi)
        self.records["lmin_kw"][:, slot] = lmin
        self.records["lmax_kw"][:, slot] = lmax
        return lmin, lmax

    def dispatch(
        self, slot: int, cap_kw: np.ndarray | float, price: np.ndarray | float | None = None
    ) -> np.ndarray:
        """Apply the cap (kW per home) for ``slot``; returns the actual import (kW).

        ``price`` ($/kWh) is the price the home plans the slot at; default is
        the band's ``p_low`` from ``compute_ranges`` (the home uses its cap
        up to its unconstrained optimum at the low price).
        """
        self._check_slot(slot)
        cap = np.broadcast_to(np.asarray(cap_kw, dtype=float), (self.n_homes,)).copy()
        if np.any(np.isnan(cap)):
            raise HEMSConfigError("cap_kw", "must not be NaN")
        if price is None:
            if self._band is None:
                raise HEMSStateError("dispatch needs compute_ranges first or an explicit price")
            price_arr = self._band[0]
        else:
            price_arr = self._prices("price", price)
        rec = self.records
        base = self.base_kw(slot)
        imp = base.copy()
        viol_c = np.zeros(self.n_homes)
        si = self.smart_idx
        if len(si):
            opts = self._options if self._options is not None else self._smart_options(slot)
            x, _ = capped_response(opts, price_arr[si], base[si], cap[si], self.dt_h)
            x = {d: v.copy() for d, v in x.items()}
            # cap below the smallest comfort-keeping import: undo PV curtailment, then shed
            # WH, then HVAC
            excess = base[si] + sum(x.values()) - cap[si]
            for d in ("pv", "wh", "hvac"):
                cut = np.clip(excess, 0.0, x[d])
                x[d] -= cut
                excess -= cut
            p = self.params
            soc = battery_step(p, self.soc_kwh, x["bat"], self.dt_h)
            exo_gain, exo_mode = self.gain_kw[:, slot], self.mode[:, slot]
            t_in = hvac_step(
                p, self.t_in_c, self.t_out_c[slot], exo_gain, exo_mode, x["hvac"], self.dt_h
            )
            tank = wh_step(p, self.tank_c, self.draw_l[si, slot], x["wh"], self.dt_h)
            v = (
                np.maximum(p.t_low_c - t_in, 0)
                + np.maximum(t_in - p.t_high_c, 0)
                + np.maximum(p.tank_low_c - tank, 0)
                + np.maximum(tank - p.tank_high_c, 0)
            )
            self.soc_kwh, self.t_in_c, self.tank_c = soc, t_in, tank
            imp[si] = base[si] + sum(x.values())
            rec["pv_curtailed_kw"][si, slot] = x["pv"]
            viol_c[si] = np.where(v > VIOLATION_TOL_C, v, 0.0)  # drop float rounding
            for d, name in (("bat", "battery_kw"), ("hvac", "hvac_kw"), ("wh", "wh_kw")):
                rec[name][si, slot] = x[d]
            rec["soc_kwh"][si, slot] = soc
            rec["t_in_c"][si, slot] = t_in
            rec["tank_c"][si, slot] = tank
        q_kw = self.load_kw[:, slot].copy()
        if len(si):
            q_kw[si] += rec["hvac_kw"][si, slot]
        q = q_kw * np.tan(np.arccos(self.power_factor))
        rec["import_kw"][:, slot] = imp
        rec["q_kvar"][:, slot] = q
        curtailed = np.nan_to_num(rec["pv_curtailed_kw"][:, slot])
        rec["pv_kw"][:, slot] = self.pv_kw[:, slot] - curtailed
        rec["load_kw"][:, slot] = self.load_kw[:, slot]
        rec["draw_l"][:, slot] = self.draw_l[:, slot]
        rec["comfort_violation_c"][:, slot] = viol_c
        rec["cap_kw"][:, slot] = cap
        rec["cap_violation_kw"][:, slot] = np.maximum(imp - cap, 0.0)
        rec["price_usd_per_kwh"][:, slot] = price_arr
        self.last_p_kw, self.last_q_kvar = imp, q
        self.slot += 1
        self._band = None
        self._options = None
        return imp.copy()

    # ------------------------------------------------------------ helpers
    def run_prices(self, prices: np.ndarray) -> np.ndarray:
        """Run the remaining slots with a known price per slot ($/kWh, (n_slots,) or
        (homes, n_slots)) and no cap binding (cap = Lmax); returns imports (homes, slots)."""
        prices = np.asarray(prices, dtype=float)
        for t in range(self.slot, self.n_slots):
            pt = prices[..., t]
            _, lmax = self.compute_ranges(t, pt, pt)
            self.dispatch(t, lmax, price=pt)
        return self.records["import_kw"]

    def daily_cost(self) -> np.ndarray:
        """Cost ($) per home of the recorded slots: energy at the recorded price
        (net metering) + battery degradation + terminal shortfall value of the
        battery below its initial SOC (smart homes)."""
        rec = self.records
        dt = self.dt_h
        cost = np.nansum(rec["import_kw"] * rec["price_usd_per_kwh"], axis=1) * dt
        si = self.smart_idx
        if len(si):
            deg = self.config.battery_degradation_usd_per_kwh
            cost[si] += deg * dt * np.nansum(np.abs(rec["battery_kw"][si]), axis=1)
            cost[si] += self.terminal_usd_per_kwh * np.maximum(self.e0_kwh - self.soc_kwh, 0.0)
        return cost
