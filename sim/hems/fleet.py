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
slot), comfort_violation_c, cap_kw, cap_violation_kw, shed_kw (water-heater and HVAC power cut
below the comfort-keeping plan to meet a cap: energy not served), lmin_kw, lmax_kw,
price_usd_per_kwh, draw_l.
``fleet.occupancy`` (homes, slots) is the ground-truth mean number of active
occupants per slot for every home.

Length: the fleet's state machine (ranges or bid points, then dispatch at a cap or at the bid,
then the state step and its records) is one vectorized object; models, policy, training and
household data are already in their own modules.
"""

from __future__ import annotations

import numpy as np

from sim.errors import BlockhemsError
from sim.protocol import dispatch_cap

from .appliances import (
    SmartHomeParams,
    battery_step,
    hvac_mode,
    hvac_step,
    internal_gains_kw,
    max_draw_litres,
    sample_params,
    wh_step,
)
from .config import FleetConfig, HEMSConfigError
from .data import (
    Weather,
    hot_water_draws,
    load_weather,
    price_forecast_slots,
)
from .homes import fleet_seeds, household_loads, hvac_sizes, smart_homes
from .policy import (
    ADPPolicy,
    ExoSlot,
    MyopicPolicy,
    Policy,
    ValueFunctions,
    build_options,
    capped_response,
    respond,
    state_nodes,
)
from .training import TrainingData, cached_value_functions, sample_training_days, training_pool

__all__ = ["HEMSFleet", "HEMSStateError", "CAP_TOL_KW", "RECORD_NAMES"]

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
    "shed_kw",
    "lmin_kw",
    "lmax_kw",
    "price_usd_per_kwh",
    "draw_l",
)


class HEMSStateError(BlockhemsError, RuntimeError):
    """A fleet method was called out of order (e.g. for a slot other than the current one)."""


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
        self.slots_per_day = cfg.slots_per_day
        self.n_slots = cfg.slots_per_day * cfg.n_days
        self.n_homes = h = cfg.n_homes
        self.weather = self._checked_weather(weather)
        s_smart, s_occ, s_hh, s_par, s_draw, s_train, s_pf = fleet_seeds(cfg)
        self.smart = smart_homes(cfg)
        self.smart_idx = np.flatnonzero(self.smart)
        occ_r = cfg.ranges.occupants
        self.n_occupants = np.random.default_rng(s_occ).integers(
            int(np.ceil(occ_r.lo)), int(np.floor(occ_r.hi)) + 1, h
        )
        self.power_factor = np.random.default_rng(s_par).uniform(
            cfg.ranges.power_factor.lo, cfg.ranges.power_factor.hi, h
        )
        self.load_kw, self.occupancy = household_loads(
            cfg, self.n_occupants, self.weather.ghi_w_m2, s_hh
        )
        self.params: SmartHomeParams = sample_params(
            np.random.default_rng(s_par), len(self.smart_idx), cfg
        )
        self._smart_exogenous(s_draw)
        self.price_forecast = price_forecast_slots(cfg.price_forecast_usd_per_kwh, cfg.slot_s)
        self._train_seed = s_train
        self.training_data: TrainingData | None = None
        self._trained_day: int | None = None
        self._pool_cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        p = self.params
        if len(self.smart_idx):
            p.hvac_kw = hvac_sizes(p, self.t_out_c, self.gain_kw, self.training_pool()[2], cfg)
            self.mode = hvac_mode(p, self.t_out_c[None, :], self.gain_kw)
        else:
            self.mode = None
        self.nodes = state_nodes(p, cfg.n_state_points)
        self.e0_kwh = 0.5 * (p.e_min_kwh + p.e_max_kwh)
        self.terminal_usd_per_kwh = np.max(self.price_forecast) / p.bat_eff
        self.value_functions: ValueFunctions | None = None
        self.training_seconds: float | None = None
        self.training_cached = False  # the last training came from the set-up cache
        self._policy_name = policy
        self.policy: Policy | None = None
        self.reset()

    def _checked_weather(self, weather: Weather | None) -> Weather:
        cfg, n = self.config, self.n_slots
        if weather is None:
            weather = load_weather(cfg.weather_file, cfg.start_day, cfg.n_days, cfg.slot_s)
        if not isinstance(weather, Weather):
            raise HEMSConfigError("weather", "must be a sim.hems.data.Weather")
        if weather.slot_s != cfg.slot_s or weather.n_slots != n:
            raise HEMSConfigError(
                "weather",
                f"needs {n} slots of {cfg.slot_s} s, got {weather.n_slots} of {weather.slot_s} s",
            )
        return weather

    def _smart_exogenous(self, draw_seed: np.random.SeedSequence) -> None:
        """The smart homes' PV output, internal gains and hot-water draws per slot."""
        cfg, h, n = self.config, self.n_homes, self.n_slots
        p, si, weather = self.params, self.smart_idx, self.weather
        self.pv_kw = np.zeros((h, n))
        self.pv_kw[si] = p.pv_kwp[:, None] * weather.pv_kw_per_kwp[p.pv_orientation]
        self.gain_kw = internal_gains_kw(
            self.load_kw[si], self.occupancy[si], weather.ghi_w_m2[None, :]
        )
        self.draw_l = np.zeros((h, n))
        self._draw_rng = np.random.default_rng(draw_seed)
        self.draw_l[si] = hot_water_draws(
            self._draw_rng,
            self.occupancy[si],
            p.hot_water_l_per_person_day,
            self.n_occupants[si],
            cfg.slot_s,
            max_draw_litres(p, self.dt_h),
        )
        self.t_out_c = weather.temp_out_c

    # ------------------------------------------------------------ setup
    def training_pool(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The training households (see :func:`sim.hems.training.training_pool`), cached."""
        if self._pool_cache is None:
            self._pool_cache = training_pool(self)
        return self._pool_cache

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
        self.training_data = sample_training_days(self, day)
        self._trained_day = day
        self.value_functions, self.training_seconds, self.training_cached = cached_value_functions(
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

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, np.ndarray | int | None]:
        """What the fleet carries from one slot to the next, between slots (a resumable run's
        checkpoint; ``restore`` undoes it on a fleet built from the same configuration). Not
        the records of past slots: the results tables hold those."""
        if self._band is not None:
            raise HEMSStateError(f"slot {self.slot} is half done: a state is taken between slots")
        return {
            "slot": int(self.slot),
            "soc_kwh": self.soc_kwh.copy(),
            "t_in_c": np.asarray(self.t_in_c, dtype=float).copy(),
            "tank_c": np.asarray(self.tank_c, dtype=float).copy(),
            "last_p_kw": self.last_p_kw.copy(),
            "last_q_kvar": self.last_q_kvar.copy(),
            "trained_day": self._trained_day,
        }

    def restore(self, state: dict) -> None:
        """Continue from ``state`` (see ``state``): the slot and the homes' states; the value
        functions of the state's training day (the training is deterministic and cached)."""
        slot = int(state["slot"])
        if not 0 <= slot <= self.n_slots:
            raise HEMSStateError(f"a state at slot {slot} is outside 0..{self.n_slots}")
        arrays = {k: np.asarray(state[k], dtype=float) for k in ("soc_kwh", "t_in_c", "tank_c")}
        arrays.update(last_p_kw=np.asarray(state["last_p_kw"], dtype=float))
        arrays.update(last_q_kvar=np.asarray(state["last_q_kvar"], dtype=float))
        for name, value in arrays.items():
            if value.shape != np.shape(getattr(self, name)):
                raise HEMSStateError(
                    f"a state's {name} has shape {value.shape}, this fleet's "
                    f"{np.shape(getattr(self, name))}: not the same fleet"
                )
        self.reset()
        self.slot = slot
        self.soc_kwh, self.t_in_c, self.tank_c = (
            arrays["soc_kwh"],
            arrays["t_in_c"],
            arrays["tank_c"],
        )
        self.last_p_kw, self.last_q_kvar = arrays["last_p_kw"], arrays["last_q_kvar"]
        day = state.get("trained_day")
        if day is not None and self._policy_name == "adp" and day != self._trained_day:
            self.train(int(day))

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
        lo, hi = self._prices("p_low", p_low), self._prices("p_high", p_high)
        if np.any(lo > hi):
            raise HEMSConfigError("p_low", "must be <= p_high")
        points = self.compute_points(slot, np.stack([lo, hi], axis=1))
        return points[:, 1], points[:, 0]

    def compute_points(self, slot: int, prices: np.ndarray, shed_last: bool = False) -> np.ndarray:
        """Each home's demand (kW, net import) at each of K prices ($/kWh) for ``slot``:
        ``prices`` is (K,) or (homes, K), non-decreasing along K; the result (homes, K) is
        non-increasing along K, so ``Lmax = points[:, 0]`` and ``Lmin = points[:, -1]``.
        Smart homes solve their one-step ADP problem at every price; ordinary homes return
        their load forecast. With ``shed_last`` the last point is instead the home's demand
        with its comfort given up: HVAC and water heater off, the battery as at the point
        before, no PV curtailed (its price only orders it last)."""
        self._check_slot(slot)
        price = np.asarray(prices, dtype=float)
        k = price.shape[-1] if price.ndim else 0
        if price.ndim not in (1, 2) or k < 1:
            raise HEMSConfigError("prices", f"must be (K,) or (homes, K), got shape {price.shape}")
        price = np.broadcast_to(price, (self.n_homes, k)).copy()
        if not np.all(np.isfinite(price)):
            raise HEMSConfigError("prices", "prices must be finite")
        if np.any(np.diff(price, axis=1) < 0):
            raise HEMSConfigError("prices", "must be non-decreasing along the K points")
        base = self.base_kw(slot)
        points = np.repeat(base[:, None], k, axis=1)
        tan_phi = np.tan(np.arccos(self.power_factor))
        # reactive power at each point: household load and HVAC draw it (as in dispatch)
        self.points_q_kvar = np.repeat((self.load_kw[:, slot] * tan_phi)[:, None], k, axis=1)
        if len(self.smart_idx):
            si = self.smart_idx
            opts = self._smart_options(slot)
            rows = np.arange(len(si))
            # each appliance's power (kW) at each point, for `dispatch_bid`
            self._shed_last = shed_last
            self._point_x = {d: np.zeros((len(si), k)) for d in opts}
            for j in range(k):
                if shed_last and j == k - 1:  # comfort given up: only the battery stays
                    self._point_x["bat"][:, j] = self._point_x["bat"][:, j - 1]
                else:
                    idx = respond(opts, price[si, j], self.dt_h)
                    for d in opts:
                        self._point_x[d][:, j] = opts[d].x[rows, idx[d]]
                points[si, j] += sum(self._point_x[d][:, j] for d in opts)
                self.points_q_kvar[si, j] += self._point_x["hvac"][:, j] * tan_phi[si]
            self._options = opts
        self._band = (price[:, 0], price[:, -1])
        self.records["lmin_kw"][:, slot] = points[:, -1]
        self.records["lmax_kw"][:, slot] = points[:, 0]
        return points

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
        si = self.smart_idx
        x = None
        if len(si):
            opts = self._options if self._options is not None else self._smart_options(slot)
            base = self.base_kw(slot)
            x, _ = capped_response(opts, price_arr[si], base[si], cap[si], self.dt_h)
            x = {d: v.copy() for d, v in x.items()}
        return self._run_slot(slot, cap, price_arr, x)

    def dispatch_bid(self, slot: int, lam: np.ndarray | float) -> np.ndarray:
        """Run ``slot`` at the bid of ``compute_points``: each smart home runs every appliance
        at its powers of the bid's points walked to ``lam`` (one per home, or one for all;
        ``sim.protocol.dispatch_cap``), so its import and its reactive power are exactly the
        bid's own at ``lam``. Each point keeps comfort and the appliances' limits (but a shed
        point, see `compute_points`), and so does a mix of two neighbouring points (the models
        are linear in power, the limits convex); below the least comfort-keeping point the
        HVAC and water-heater power given up is recorded as shed.
        Returns the actual import (kW); the cap recorded is that import."""
        self._check_slot(slot)
        if self._band is None or self._options is None:
            raise HEMSStateError("dispatch_bid needs compute_points for the slot first")
        lam_h = np.broadcast_to(np.asarray(lam, dtype=float), (self.n_homes,))
        if np.any(np.isnan(lam_h[self.smart_idx])):
            raise HEMSConfigError("lam", "must not be NaN for a smart home")
        si = self.smart_idx
        cap = np.full(self.n_homes, np.inf)
        x, given_up = None, None
        if len(si):
            x = {d: dispatch_cap(lam_h[si], v) for d, v in self._point_x.items()}
            cap[si] = self.base_kw(slot)[si] + sum(x.values())
            # HVAC and water heater below the least of the comfort-keeping points: load shed
            kept = slice(0, -1) if self._shed_last else slice(None)
            given_up = sum(
                np.maximum(self._point_x[d][:, kept].min(axis=1) - x[d], 0.0)
                for d in ("hvac", "wh")
            )
        return self._run_slot(slot, cap, self._band[0], x, given_up)

    def _run_slot(
        self,
        slot: int,
        cap: np.ndarray,
        price_arr: np.ndarray,
        x: dict[str, np.ndarray] | None,
        shed_kw: np.ndarray | None = None,
    ) -> np.ndarray:
        """Advance every home one slot with the smart homes' appliance powers ``x`` (kW):
        trim them to ``cap`` where comfort cannot be kept below it, step the states, record."""
        rec = self.records
        base = self.base_kw(slot)
        imp = base.copy()
        viol_c = np.zeros(self.n_homes)
        si = self.smart_idx
        if len(si):
            # cap below the smallest comfort-keeping import: undo PV curtailment, then shed
            # WH, then HVAC
            excess = base[si] + sum(x.values()) - cap[si]
            shed = np.zeros(len(si))
            for d in ("pv", "wh", "hvac"):
                cut = np.clip(excess, 0.0, x[d])
                x[d] -= cut
                excess -= cut
                if d != "pv":
                    shed += cut
            rec["shed_kw"][si, slot] = shed if shed_kw is None else shed + shed_kw
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
