"""The DSO: stage 1 (DLMPs and price bands) and stage 2 (lambda with an AC check).

Usage (plain objects, no mosaik)::

    feeder = build_feeder("ieee_eu_lv")
    dso = DSO(feeder)                        # groups = feeder zones, all homes HEMS
    s1 = dso.stage1(forecast_p_kw, price=0.12, slot=r)          # per-site forecast, kW
    s2 = dso.stage2(lmin_kw, lmax_kw, s1.p_low, s1.p_high, nonhems_p_kw, slot=r)

The DSO never sees a home's data: stage 1 takes the DSO's own per-site forecast of total
demand (``feeder.site_totals`` sums a per-home array if that is what a scenario has), stage 2
the per-group totals revealed by the contract and its forecast of the ordinary homes per site.
Group totals are spread over the member sites by public weights: each registered HEMS home has
an equal share of its group's total (``DSO.weights``, sites x groups, columns sum to 1).
Reactive power of flexible demand follows ``hems_power_factor``; when no reactive forecast is
given, ``forecast_power_factor`` is assumed.

The DSO's AC checks run on ``ac_engine``: ``"pandapower"`` (``runpp_3ph``, the grid
simulator's engine) or ``"pgm"`` (power-grid-model on the same feeder data, about 15 times
faster; the two agree within 5e-4 pu, see tests/test_grid_engines.py).

Length: the DSO object holds both stages' set-up, the K-point segment model of stage 2 and
its AC-check loop; the stage problems themselves live in stage1.py and stage2.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from grid_models.errors import PowerFlowError
from grid_models.feeders import Feeder
from grid_models.linear import LinearModel, OperatingPoint
from grid_models.powerflow import PowerFlowResult, run_power_flow
from sim.constants import AC_ENGINES, DEFAULT_AC_ENGINE, VOLL_USD_PER_KWH
from sim.dso.errors import DSOError
from sim.dso.limits import ConstraintRows, DSOLimits
from sim.dso.stage1 import Stage1Problem, Stage1Result, price_bands
from sim.dso.stage2 import Stage2Problem, Stage2Result

MODES = ("single", "group")


def _finite(name: str, values, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if shape is not None and arr.shape != shape:
        raise DSOError(f"{name} has shape {arr.shape}, expected {shape}")
    bad = np.flatnonzero(~np.isfinite(arr.ravel()))
    if bad.size:
        raise DSOError(f"{name} contains NaN or inf at positions {bad[:10].tolist()}")
    return arr


class _Segments:
    """The groups' bid curves as the variables of stage 2's QP.

    Each variable fills one segment of a group's curve, from Lmin upwards (a fraction in
    [0, 1]); with ``single`` one variable fills every group's only segment (the paper's one
    lambda). ``m`` (G, n_var) is each variable's kW per group; along a segment the homes'
    marginal value falls linearly from its upper price to its lower price, which gives the
    welfare coefficients (``welfare``), concave, so segments fill in order.
    """

    def __init__(
        self, points: np.ndarray, ladder: np.ndarray, single: bool, q_points: np.ndarray | None
    ) -> None:
        g, k = points.shape
        self.k = k
        self.lmin = points[:, -1]
        # segment j of a group runs from point k-1-j (higher price) to point k-2-j
        delta = points[:, -2::-1] - points[:, :0:-1]  # (G, K-1), kW per segment
        self.q_lmin = None if q_points is None else q_points[:, -1]
        q_delta = None if q_points is None else q_points[:, -2::-1] - q_points[:, :0:-1]
        upper = ladder[:, :0:-1]  # (G, K-1), $/kWh at the segment's low-demand end
        lower = ladder[:, -2::-1]
        self.mq = None
        if single:
            self.m = delta[:, :1]
            self.upper, self.lower = upper[:, :1], lower[:, :1]
            if q_delta is not None:
                self.mq = q_delta[:, :1]
        else:
            self.m = np.zeros((g, g * (k - 1)))
            for j in range(k - 1):
                self.m[np.arange(g), np.arange(g) * (k - 1) + j] = delta[:, j]
            if q_delta is not None:
                self.mq = np.zeros_like(self.m)
                for j in range(k - 1):
                    self.mq[np.arange(g), np.arange(g) * (k - 1) + j] = q_delta[:, j]
            self.upper = np.repeat(upper.reshape(1, -1), g, axis=0)
            self.lower = np.repeat(lower.reshape(1, -1), g, axis=0)
        self.single = single
        self.n_var = self.m.shape[1]

    def welfare(
        self, cost_g: np.ndarray, q_cost_g: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Linear and quadratic welfare coefficients ($/h) of the variables at the groups'
        marginal supply cost ``cost_g`` ($/kWh) and, for bids that carry reactive power, its
        marginal loss cost ``q_cost_g`` ($/kvarh)."""
        a = (self.m * (self.upper - cost_g[:, None])).sum(axis=0)
        if self.mq is not None and q_cost_g is not None:
            a = a - (self.mq * q_cost_g[:, None]).sum(axis=0)
        b = (self.m * (self.upper - self.lower)).sum(axis=0)
        return a, b

    def fill(self, lam: np.ndarray) -> np.ndarray:
        """The segment fill that puts each group at ``lam`` along its curve (segments filled
        in order from Lmin): the inverse of ``lambdas``."""
        n_groups = self.m.shape[0]
        if self.single:
            return np.array([float(np.max(lam))])
        position = np.clip(np.asarray(lam, dtype=float), 0.0, 1.0) * (self.k - 1)
        segment = np.arange(self.k - 1)
        fill = np.clip(position[:, None] - segment[None, :], 0.0, 1.0)  # (G, K-1)
        return fill.reshape(n_groups * (self.k - 1))

    def lambdas(self, s: np.ndarray) -> np.ndarray:
        """Each group's lambda for the segment fill ``s``: the position along its curve from
        Lmin (0) to Lmax (1)."""
        n_groups = self.m.shape[0]
        if self.single:
            return np.full(n_groups, float(s[0]))
        fill = s.reshape(n_groups, self.k - 1)
        if self.k == 2:
            return fill[:, 0].copy()
        out = np.zeros(n_groups)
        for g in range(n_groups):
            seg = self.m[g, g * (self.k - 1) : (g + 1) * (self.k - 1)]  # kW per segment
            above = float(seg @ fill[g])  # kW above Lmin, filled in order
            pos = 0.0
            for size in seg:
                if size <= 0.0:  # a flat segment: passed only if demand lies beyond it
                    if above <= 1e-12:
                        break
                    pos += 1.0
                    continue
                take = min(above, size)
                pos += take / size
                above -= take
                if take < size:
                    break
            out[g] = pos / (self.k - 1)
        return np.clip(out, 0.0, 1.0)


class DSO:
    """Distribution system operator of one feeder (see module docstring).

    groups: mapping group id -> home ids of its HEMS members (default: every home in its
    feeder zone). Group ids are reported in ``group_ids`` order in every array.
    voll: value of lost load ($/kWh), the price cap of stage 1 and of ``p_high``.
    band_fraction: half-width of the price band as a fraction of the energy price.
    stage1_ac: run an AC power flow at each stage-1 forecast (True) or, once a solved point
    exists, linearize stage 1 at the last AC solution (the previous slot's final AC check),
    which saves one ``runpp_3ph`` per slot at the cost of the linear model's error in prices.
    """

    def __init__(
        self,
        feeder: Feeder,
        limits: DSOLimits | None = None,
        groups: Mapping[int, Sequence[int]] | None = None,
        voll: float = VOLL_USD_PER_KWH,
        band_fraction: float = 0.25,
        hems_power_factor: float = 0.95,
        forecast_power_factor: float = 0.95,
        max_iter: int = 5,
        stage1_ac: bool = True,
        ac_engine: str = DEFAULT_AC_ENGINE,
    ) -> None:
        self.feeder = feeder
        self.limits = limits or DSOLimits(feeder.v_min_pu, feeder.v_max_pu)
        self.limits.validate(feeder.net.line.index.to_numpy())
        for name, value in (("voll", voll), ("band_fraction", band_fraction)):
            if not np.isfinite(value) or value <= 0:
                raise DSOError(f"{name} must be a positive number, got {value}")
        for name, pf in (
            ("hems_power_factor", hems_power_factor),
            ("forecast_power_factor", forecast_power_factor),
        ):
            if not 0 < pf <= 1:
                raise DSOError(f"{name} must be in (0, 1], got {pf}")
        if max_iter < 1:
            raise DSOError(f"max_iter must be >= 1, got {max_iter}")
        self.voll = float(voll)
        self.band_fraction = float(band_fraction)
        self.tan_hems = float(np.tan(np.arccos(hems_power_factor)))
        self.tan_forecast = float(np.tan(np.arccos(forecast_power_factor)))
        self.max_iter = int(max_iter)
        self.stage1_ac = bool(stage1_ac)
        if ac_engine not in AC_ENGINES:
            shown = " or ".join(repr(e) for e in sorted(AC_ENGINES))
            raise DSOError(f"ac_engine must be {shown}, got {ac_engine!r}")
        if ac_engine == "pgm":
            from grid_models.pgm import PGMPowerFlow

            self._pgm: PGMPowerFlow | None = PGMPowerFlow(feeder)
        else:
            self._pgm = None
        if groups is None:
            homes = feeder.homes
            groups = {int(z): homes.home_id[homes.zone == z].tolist() for z in feeder.zones.zone}
        self.group_ids, self.weights = self._weights(groups)
        self.model = LinearModel(feeder)
        self.rows = ConstraintRows(self.model)
        self._stage1 = Stage1Problem(self.rows, self.voll)
        self._stage2: dict[str, Stage2Problem] = {}
        self.op: OperatingPoint | None = None
        self.last_price: float | None = None

    # -----------------------------------------------------------------------------------------
    def _weights(self, groups: Mapping[int, Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        homes = self.feeder.homes
        if not groups:
            raise DSOError("groups is empty: need at least one group of HEMS homes")
        site_of = homes.set_index("home_id").site
        ids = sorted(groups)
        w = np.zeros((self.feeder.n_sites, len(ids)))
        seen: dict[int, int] = {}
        for j, g in enumerate(ids):
            members = list(groups[g])
            if not members:
                raise DSOError(f"group {g} has no homes")
            for h in members:
                if h not in site_of.index:
                    raise DSOError(f"group {g}: unknown home id {h}")
                if h in seen:
                    raise DSOError(f"home {h} is in groups {seen[h]} and {g}")
                seen[h] = g
                w[site_of[h], j] += 1.0 / len(members)
        return np.asarray(ids), w

    def _problems(self) -> dict:
        """The DSO's compiled QPs by name (stage 2's are made per bid shape, when first met)."""
        problems = {"stage1": self._stage1.problem}
        for (mode, n_var), stage2 in self._stage2.items():
            problems[f"stage2/{mode}/{n_var}/problem"] = stage2.problem
            problems[f"stage2/{mode}/{n_var}/least_violation"] = stage2.least_violation
        return problems

    def solver_state(self) -> dict:
        """What the DSO carries between slots, for a resumable run's checkpoint: the last
        price, the solutions its QPs warm-start from (so a resumed run takes the same
        iterates) and, when stage 1 predicts instead of running AC (``stage1_ac=False``), the
        operating point. Flat: names to arrays or JSON values."""
        from dataclasses import asdict

        from sim.dso.solve import warm_start

        state: dict = {"last_price": self.last_price, "stage2": [list(k) for k in self._stage2]}
        for name, problem in self._problems().items():
            for field, value in (warm_start(problem) or {}).items():
                state[f"warm/{name}/{field}"] = value
        if not self.stage1_ac and self.op is not None:
            state.update({f"op/{k}": np.asarray(v) for k, v in asdict(self.op).items()})
        return state

    def restore_solver_state(self, state: dict) -> None:
        """Continue from ``solver_state``'s `state` on a DSO built like the one it came from."""
        from sim.dso.solve import set_warm_start

        self.last_price = state["last_price"]
        for mode, n_var in state["stage2"]:
            self._stage2.setdefault((mode, n_var), Stage2Problem(self.rows, n_var))
        for name, problem in self._problems().items():
            prefix = f"warm/{name}/"
            warm = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            set_warm_start(problem, warm or None)
        op = {k[3:]: v for k, v in state.items() if k.startswith("op/")}
        if op:
            op["losses_kw"] = float(op["losses_kw"])
            self.op = OperatingPoint(**op)

    @property
    def n_groups(self) -> int:
        return len(self.group_ids)

    def _limits(self, limits: DSOLimits | None) -> DSOLimits:
        if limits is None:
            return self.limits
        limits.validate(self.feeder.net.line.index.to_numpy())
        return limits

    def _ac(self, p: np.ndarray, q: np.ndarray, slot: int | None) -> PowerFlowResult:
        if self._pgm is not None:
            return self._pgm(p, q, slot=slot)
        return run_power_flow(self.feeder, p, q, slot=slot)

    # -----------------------------------------------------------------------------------------
    def stage1(
        self,
        forecast_p_kw: np.ndarray,
        price: float,
        forecast_q_kvar: np.ndarray | None = None,
        limits: DSOLimits | None = None,
        slot: int | None = None,
    ) -> Stage1Result:
        """DLMPs per site and price bands per group for a per-site demand forecast (kW).

        ``price`` is the substation energy price ($/kWh). Runs one AC power flow at the
        forecast (the linearization point, kept for stage 2; see ``stage1_ac``) and solves the
        linear OPF.
        """
        ns = self.feeder.n_sites
        p = _finite("forecast_p_kw", forecast_p_kw, (ns,))
        q = (
            p * self.tan_forecast
            if forecast_q_kvar is None
            else _finite("forecast_q_kvar", forecast_q_kvar, (ns,))
        )
        price = float(_finite("price", price))
        if price < 0:
            raise DSOError(f"price must be >= 0 $/kWh, got {price}")
        lim = self._limits(limits)
        if self.stage1_ac or self.op is None:
            ac = self._ac(p, q, slot)
            self.op = self.model.operating_point(ac, p, q)
            vm = ac.vm_pu[np.searchsorted(ac.bus, self.model.lv_buses)]
        else:
            vm = self.model.predict(self.op, p, q)[0]
        self.last_price = price
        sol = self._stage1.solve(self.op, p, price, lim)
        p_low, p_high = price_bands(
            self.weights,
            sol["energy"],
            sol["loss"],
            sol["congestion"],
            sol["voltage"],
            price,
            self.band_fraction,
            self.voll,
        )
        return Stage1Result(slot=slot, p_low=p_low, p_high=p_high, vm_pu=vm, **sol)

    def solve_stage1_at(
        self, op: OperatingPoint, demand_kw: np.ndarray, price: float, limits: DSOLimits
    ) -> dict:
        """Stage-1 OPF at a given linearization (no AC run); used for sensitivity checks."""
        return self._stage1.solve(op, np.asarray(demand_kw, dtype=float), price, limits)

    # -----------------------------------------------------------------------------------------
    def _check(self, ac: PowerFlowResult, lim: DSOLimits) -> tuple[str, np.ndarray, np.ndarray]:
        """AC violations (text, empty if none) and line loading against the DSO's ratings.

        The AC flow must keep each margin in full, as the linear model does: the margin is
        for the error the DSO cannot see (how each group's total spreads over its members,
        the ordinary homes' forecast), so the linearization's own error is re-linearized away
        rather than taken out of it. Keeping half in the AC check let the spread's error
        (up to 0.0044 pu near the ceiling, autumn and spring stress days) through: 2 slot-
        phases out on the autumn day and a line at 128 % on the January day (BENCHMARKS.md)."""
        lv = np.isin(ac.bus, self.model.lv_buses)
        vm = ac.vm_pu[lv]
        amp = self.rows.ampacity(lim).reshape(-1, 3)[1:]  # lines, A
        order = np.searchsorted(self.model.branch_line[1:], ac.line)
        loading = ac.line_i_a / amp[order] * 100.0
        out = []
        tol_v, tol_i = 1e-6 - lim.v_margin_pu, 1e-3 - lim.i_margin_pct
        if vm.min() < lim.v_min_pu - tol_v:
            out.append(f"min voltage {vm.min():.4f} pu < {lim.v_min_pu - tol_v:.4f}")
        if vm.max() > lim.v_max_pu + tol_v:
            out.append(f"max voltage {vm.max():.4f} pu > {lim.v_max_pu + tol_v:.4f}")
        if loading.max() > 100.0 + tol_i:
            k = np.unravel_index(np.argmax(loading), loading.shape)
            out.append(f"line {ac.line[k[0]]} phase {'abc'[k[1]]} at {loading.max():.1f} %")
        if ac.trafo_loading_pct.max() > 100.0 + tol_i:
            out.append(f"transformer at {ac.trafo_loading_pct.max():.1f} %")
        return "; ".join(out), loading, vm

    def stage2(
        self,
        lmin_kw: np.ndarray,
        lmax_kw: np.ndarray,
        p_low: np.ndarray,
        p_high: np.ndarray,
        nonhems_p_kw: np.ndarray,
        nonhems_q_kvar: np.ndarray | None = None,
        price: float | None = None,
        limits: DSOLimits | None = None,
        mode: str = "single",
        slot: int | None = None,
    ) -> Stage2Result:
        """Clear lambda from group ranges (kW totals, ``group_ids`` order) and bands ($/kWh):
        the seed paper's two-point bids (see ``stage2_points``)."""
        lmin = _finite("lmin_kw", lmin_kw, (self.n_groups,))
        lmax = _finite("lmax_kw", lmax_kw, (self.n_groups,))
        lo_p = _finite("p_low", p_low, (self.n_groups,))
        hi_p = _finite("p_high", p_high, (self.n_groups,))
        return self.stage2_points(
            np.stack([lmax, lmin], axis=1),
            np.stack([lo_p, hi_p], axis=1),
            nonhems_p_kw,
            nonhems_q_kvar,
            price,
            limits,
            mode,
            slot,
        )

    def stage2_points(
        self,
        points_kw: np.ndarray,
        prices: np.ndarray,
        nonhems_p_kw: np.ndarray,
        nonhems_q_kvar: np.ndarray | None = None,
        price: float | None = None,
        limits: DSOLimits | None = None,
        mode: str = "group",
        slot: int | None = None,
        hems_q_kvar: np.ndarray | None = None,
        q_points_kvar: np.ndarray | None = None,
    ) -> Stage2Result:
        """Clear lambda from each group's bid curve: ``points_kw`` (G, K) the group's total
        demand (kW) at its K ladder ``prices`` (G, K, $/kWh, non-decreasing), so the points
        are non-increasing (``[:, 0]`` is Lmax, ``[:, -1]`` Lmin). Lambda in [0, 1] walks the
        curve piecewise linearly from Lmin (0) to Lmax (1) (``sim.protocol.dispatch_cap``);
        with K = 2 that is the seed paper's ``lambda Lmax + (1 - lambda) Lmin``.

        ``nonhems_p_kw`` is the forecast of the ordinary homes per site (kW). ``price`` defaults
        to the price of the last stage 1. Linearizes at the last stage-1 point if there is one.
        ``mode`` "single" clears one lambda for every group (K = 2 only), "group" one each.
        ``hems_q_kvar``: the HEMS homes' reactive demand per site (kvar), which does not move
        with lambda (homes draw reactive power with their load and HVAC, not with PV, battery
        or export); without it, the flexible demand's q follows its P at
        ``hems_power_factor`` (the older model: negative for exporting homes).
        ``q_points_kvar`` (G, K): the groups' revealed reactive demand at each point of their
        bids; when given, the dispatch's q walks the bid as its P does (``hems_q_kvar`` then
        holds only what the bids leave out, if anything).
        """
        if mode not in MODES:
            raise DSOError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        points, ladder = self._bid_inputs(points_kw, prices)
        if mode == "single" and points.shape[1] != 2:
            raise DSOError(f"mode 'single' clears two-point bids, got {points.shape[1]} points")
        ns = self.feeder.n_sites
        base_p = _finite("nonhems_p_kw", nonhems_p_kw, (ns,))
        base_q = (
            base_p * self.tan_forecast
            if nonhems_q_kvar is None
            else _finite("nonhems_q_kvar", nonhems_q_kvar, (ns,))
        )
        if price is None:
            if self.last_price is None:
                raise DSOError("stage 2 needs a price: run stage 1 first or pass price")
            price = self.last_price
        price = float(_finite("price", price))
        lim = self._limits(limits)
        q_points = (
            None if q_points_kvar is None else _finite("q_points_kvar", q_points_kvar, points.shape)
        )
        segments = _Segments(points, ladder, mode == "single", q_points)
        key = (mode, segments.n_var)
        if key not in self._stage2:
            self._stage2[key] = Stage2Problem(self.rows, segments.n_var)
        w = self.weights
        p_fixed = base_p + w @ segments.lmin
        q_extra = 0.0 if hems_q_kvar is None else _finite("hems_q_kvar", hems_q_kvar, (ns,))
        if segments.mq is not None:  # the bids carry their reactive power
            q_per_p = 0.0
            q_fixed = base_q + q_extra + w @ segments.q_lmin
        elif hems_q_kvar is None:
            q_per_p = self.tan_hems
            q_fixed = base_q + q_per_p * (w @ segments.lmin)
        else:
            q_per_p = 0.0
            q_fixed = base_q + q_extra

        def dispatch(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            dp = w @ (segments.m @ s)
            dq = q_per_p * dp if segments.mq is None else w @ (segments.mq @ s)
            return p_fixed + dp, q_fixed + dq

        op = self.op
        if op is None:
            op = self.model.operating_point(self._ac(p_fixed, q_fixed, slot), p_fixed, q_fixed)
        return self._clear(
            self._stage2[key], op, lim, price, segments, dispatch, mode, slot, q_per_p
        )

    def _bid_inputs(self, points_kw, prices) -> tuple[np.ndarray, np.ndarray]:
        """The groups' bid curves, checked: finite, one row per group, demand non-increasing
        and prices non-decreasing along the points."""
        points = np.asarray(points_kw, dtype=float)
        k = points.shape[1] if points.ndim == 2 else 0
        points = _finite("points_kw", points, (self.n_groups, max(k, 2)))
        ladder = _finite("prices", prices, points.shape)
        bad = np.flatnonzero(points[:, -1] > points[:, 0])
        if bad.size:
            raise DSOError(f"Lmin > Lmax for groups {self.group_ids[bad].tolist()}")
        bad = np.flatnonzero(np.any(np.diff(points, axis=1) > 0, axis=1))
        if bad.size:
            raise DSOError(f"demand rises with price for groups {self.group_ids[bad].tolist()}")
        bad = np.flatnonzero(np.any(np.diff(ladder, axis=1) < 0, axis=1))
        if bad.size:
            raise DSOError(f"p_low > p_high for groups {self.group_ids[bad].tolist()}")
        return points, ladder

    def _clear(
        self,
        prob: Stage2Problem,
        op: OperatingPoint,
        lim: DSOLimits,
        price: float,
        segments: _Segments,
        dispatch,
        mode: str,
        slot: int | None,
        q_per_p: float,
    ) -> Stage2Result:
        """The lambda QP on the linear model, checked by AC and re-linearized at the AC
        solution until the AC flow keeps the limits (at most ``max_iter`` solves)."""
        w = self.weights
        p_fixed, q_fixed = dispatch(np.zeros(segments.n_var))
        dp = w @ segments.m
        dq = q_per_p * dp if segments.mq is None else w @ segments.mq
        infeasible = False
        it = 0
        while it < self.max_iter:
            it += 1
            cost_g = price * (w.T @ (1.0 + op.mlf_p + q_per_p * op.mlf_q))
            a, b = segments.welfare(cost_g, price * (w.T @ op.mlf_q))
            prob.set_values(op, lim, p_fixed, q_fixed, dp, dq, a, b)
            s, welfare, feasible = prob.solve()
            s, p_d, q_d, ac = self._ac_backing_off(s, dispatch, slot)
            welfare = float(a @ s - 0.5 * b @ s**2)  # of the dispatch actually checked
            v_pred = np.sqrt(np.maximum(prob.predicted_vsq(op, s), 0.0))
            violations, loading, _ = self._check(ac, lim)
            if not feasible:
                # No lambda meets the limits on the linear model: keep the least-violating one
                # and say so (with reverse flow that need not be lambda = 0).
                infeasible = bool(violations)
                break
            if not violations:
                break
            op = self.model.operating_point(ac, p_d, q_d)
        if violations and not infeasible:
            s, ac = self._nearest_clean(s, segments, dispatch, lim, slot, ac)
            welfare = float(a @ s - 0.5 * b @ s**2)
            v_pred = np.sqrt(np.maximum(prob.predicted_vsq(op, s), 0.0))
            violations, loading, _ = self._check(ac, lim)
        lam_group = segments.lambdas(s)
        p_d, q_d = dispatch(s)
        self.op = self.model.operating_point(ac, p_d, q_d)  # latest solved state
        rows = np.searchsorted(ac.bus, self.model.lv_buses[self.rows.v_bus_pos])
        return Stage2Result(
            slot=slot,
            mode=mode,
            lam=float(lam_group.max()) if lam_group.size else 0.0,
            lam_group=lam_group,
            dispatch_p_kw=p_d,
            dispatch_q_kvar=q_d,
            cost_g=cost_g,
            welfare_per_h=welfare,
            vm_pu=ac.vm_pu,
            bus=ac.bus,
            line_loading_pct=loading,
            trafo_loading_pct=ac.trafo_loading_pct,
            p_sub_kw=ac.p_sub_kw,
            q_sub_kvar=ac.q_sub_kvar,
            v_pred_pu=v_pred,
            v_ac_pu=ac.vm_pu[rows].reshape(-1),
            ac_ok=not violations,
            violations=violations,
            iterations=it,
            infeasible=infeasible,
        )

    # lambda moved toward Lmin (factor < 1 of lambda) or Lmax (share of 1 - lambda), nearest
    # first: the candidates an unconverged stage 2 tries on the AC flow
    FALLBACK_STEPS = (("down", 0.9), ("up", 0.1), ("down", 0.75), ("up", 0.25), ("down", 0.5),
                      ("up", 0.5), ("down", 0.25), ("up", 1.0), ("down", 0.0))  # fmt: skip

    def _nearest_clean(
        self, s: np.ndarray, segments: _Segments, dispatch, lim: DSOLimits, slot, ac
    ) -> tuple[np.ndarray, PowerFlowResult]:
        """When the re-linearization loop ends with the AC flow still outside the limits (the
        linearized line current gets the sign of a change wrong where the flow reverses):
        every group's lambda moved toward Lmin or Lmax by the steps of ``FALLBACK_STEPS``,
        nearest first, each checked by AC; the first that keeps the limits, else the dispatch
        as it was: (segment fill, its AC result)."""
        lam = segments.lambdas(s)
        for direction, step in self.FALLBACK_STEPS:
            moved = lam * step if direction == "down" else lam + (1.0 - lam) * step
            trial = segments.fill(moved)
            p_t, q_t = dispatch(trial)
            try:
                ac_t = self._ac(p_t, q_t, slot)
            except PowerFlowError:
                continue
            if not self._check(ac_t, lim)[0]:
                return trial, ac_t
        return s, ac

    def _ac_backing_off(
        self, s: np.ndarray, dispatch, slot: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, PowerFlowResult]:
        """(segment fill, site p kW, site q kvar, AC result) at ``s``; where the power flow
        diverges (the linear model proposed a point beyond voltage collapse), at ``s`` scaled
        back towards Lmin until it converges."""
        for factor in (1.0, 0.75, 0.5, 0.25, 0.0):
            trial = s * factor
            p_d, q_d = dispatch(trial)
            try:
                return trial, p_d, q_d, self._ac(p_d, q_d, slot)
            except PowerFlowError:
                continue
        raise DSOError(
            f"stage 2 (slot {slot}): the AC power flow diverges for every lambda from "
            f"{s.max():.3f} down to 0: the revealed Lmin already collapses the feeder"
        )

    def with_limits(self, **changes) -> DSOLimits:
        """A copy of the default limits with some fields changed (validated on use)."""
        return replace(self.limits, **changes)
