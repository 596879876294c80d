"""DSO stage 1: linearized three-phase OPF, DLMPs with components, price bands per group.

Problem (per slot, solved on the :class:`grid_models.LinearModel` anchored at the AC power
flow of the DSO's forecast ``d``; ``y`` served demand and ``s`` the DSO's emergency adjustment
per site, kW: shed demand where ``d > 0``, curtailed export where ``d < 0``)::

    min  sum_n c_n (y_n - p0_n) + voll * sum|s| + eps/2 * ||s||^2       ($/h)
    s.t. y + s == d                                     (dual: DLMP, $/kWh)
         (v_min+m)^2 - v0^2 <= K_P (y - p0) <= (v_max-m)^2 - v0^2      (eta_lo, eta_hi)
         S_I (y - p0) <= I_max (1 - m_I) - I0                          (kappa)
         min(d, 0) <= s <= max(d, 0)

with ``c_n = price (1 + mlf_n)`` the marginal supply cost (energy plus losses through the
marginal loss factor from the AC solution). Reactive demand stays at its forecast. Curtailing
export (``s < 0``) is what relieves an over-voltage from reverse flow, which shedding demand
cannot; both cost ``voll`` so the DSO uses them only when nothing else keeps the limits. The
voltage matrix ``K_P`` is constant; price, loss factors, margins, loads and the branch-current
sensitivities ``S_I`` (which depend on the currents' phase angles) are cvxpy parameters, so
the problem is compiled once per feeder (DPP) and re-solved each slot. The tiny
strictly convex term ``eps/2 ||s||^2`` makes the shed pattern unique when several sites are
equally effective (a degenerate LP would make it solver-dependent). HiGHS solves the QP.

By stationarity in ``y`` the DLMP at site n is::

    DLMP_n = price                        (energy)
           + price * mlf_n                (loss)
           + sum_r kappa_r S_I,rn         (congestion, >= 0 behind a binding branch)
           + sum_m (eta_hi_m - eta_lo_m) K_mn   (voltage, > 0 where a floor binds)

The solver's DLMP (the dual of ``y + s == d``; cvxpy reports it with the opposite sign of
d(cost)/d(d), checked against a finite difference of the optimal cost in the tests) and the
sum of the components are both returned.

Price band per group g (weights ``W[s, g]``: share of g's members at site s)::

    base_g     = sum_s W_sg (energy_s + loss_s)          supply cost of g's demand
    scarcity_g = sum_s W_sg (congestion_s + voltage_s)
    p_low_g  = max(-voll, base_g + min(scarcity_g, 0) - h)
    p_high_g = min(voll, base_g + max(scarcity_g, 0) + h),   h = band_fraction * price

So with no binding limit the band brackets the supply cost symmetrically (homes quote the
demand range around the price they would pay), and a binding limit raises ``p_high`` by its
scarcity rent so that ``Lmin`` is the demand at the scarcity price. An over-voltage from
reverse flow makes the voltage component negative and can take ``p_low`` below zero, down to
``-voll``: at a negative price the homes soak up export and curtail their PV, which is what
relieves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from grid_models.linear import OperatingPoint
from sim.dso.errors import DSOError
from sim.dso.limits import ConstraintRows, DSOLimits
from sim.dso.solve import solve_with_fallback


@dataclass
class Stage1Result:
    """DLMPs per site (bus-phase with homes, ``feeder.sites`` order) and bands per group.

    All prices in $/kWh; ``dlmp`` is the solver's dual, ``dlmp_sum`` the sum of the four
    components. ``served_kw``/``shed_kw`` per site; ``cost_per_h`` the optimal objective
    (linear part, $/h, relative to the operating point). ``vm_pu`` (n_lv, 3): voltages of the
    LV buses (``dso.model.lv_buses``) at the forecast, from AC (or the linear model when stage 1
    reuses the last AC point).
    """

    slot: int | None
    dlmp: np.ndarray
    energy: np.ndarray
    loss: np.ndarray
    congestion: np.ndarray
    voltage: np.ndarray
    p_low: np.ndarray
    p_high: np.ndarray
    served_kw: np.ndarray
    shed_kw: np.ndarray
    cost_per_h: float
    vm_pu: np.ndarray
    status: str

    @property
    def dlmp_sum(self) -> np.ndarray:
        return self.energy + self.loss + self.congestion + self.voltage


class Stage1Problem:
    """The compiled stage-1 cvxpy problem of one feeder (parameters set per slot)."""

    def __init__(self, rows: ConstraintRows, voll: float, eps: float = 1e-6) -> None:
        ns = rows.kv_p.shape[1]
        self.rows = rows
        self.voll = voll
        self.y = cp.Variable(ns, name="dy")  # served demand minus operating point, kW
        self.s = cp.Variable(ns, name="shed")  # > 0 shed demand, < 0 curtailed export
        self.d = cp.Parameter(ns, name="d_minus_p0")
        self.smax = cp.Parameter(ns, nonneg=True, name="shed_max")
        self.smin = cp.Parameter(ns, nonpos=True, name="curtail_max")
        self.c = cp.Parameter(ns, name="marginal_cost")
        self.lo = cp.Parameter(rows.n_v, name="v_lo")
        self.hi = cp.Parameter(rows.n_v, name="v_hi")
        self.head = cp.Parameter(rows.n_b, name="headroom")
        self.ci = cp.Parameter((rows.n_b, ns), name="current_sensitivity")
        kv = rows.kv_p
        self.balance = self.y + self.s == self.d
        self.v_lo = kv @ self.y >= self.lo
        self.v_hi = kv @ self.y <= self.hi
        self.branch = self.ci @ self.y <= self.head
        objective = (
            self.c @ self.y + voll * cp.sum(cp.abs(self.s)) + eps / 2 * cp.sum_squares(self.s)
        )
        self.problem = cp.Problem(
            cp.Minimize(objective),
            [
                self.balance,
                self.v_lo,
                self.v_hi,
                self.branch,
                self.s <= self.smax,
                self.s >= self.smin,
            ],
        )
        if not self.problem.is_dpp():
            raise DSOError("stage 1 problem is not DPP")

    def solve(
        self, op: OperatingPoint, demand_kw: np.ndarray, price: float, limits: DSOLimits
    ) -> dict[str, np.ndarray | float | str]:
        """Solve at operating point ``op`` for site demand ``demand_kw`` and energy price."""
        lo, hi, head, ci, _ = self.rows.margins(op, limits)
        self.d.value = demand_kw - op.p_kw
        self.smax.value = np.maximum(demand_kw, 0.0)
        self.smin.value = np.minimum(demand_kw, 0.0)
        self.c.value = price * (1.0 + op.mlf_p)
        self.lo.value, self.hi.value = lo, hi
        self.head.value, self.ci.value = head, ci
        solve_with_fallback(self.problem, "stage 1")
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise DSOError(
                f"stage 1 problem {self.problem.status}: limits cannot be met even by shedding "
                "all demand and curtailing all export (check the voltage band against the "
                "source voltage)"
            )
        eta = self.v_hi.dual_value - self.v_lo.dual_value
        kappa = self.branch.dual_value
        return {
            "dlmp": -np.asarray(self.balance.dual_value),
            "energy": np.full(len(demand_kw), price),
            "loss": price * op.mlf_p,
            "congestion": kappa @ ci,
            "voltage": eta @ self.rows.kv_p,
            "served_kw": op.p_kw + self.y.value,
            "shed_kw": self.s.value,
            "cost_per_h": float(
                self.c.value @ self.y.value + self.voll * np.abs(self.s.value).sum()
            ),
            "status": self.problem.status,
        }


def price_bands(
    weights: np.ndarray,
    energy: np.ndarray,
    loss: np.ndarray,
    congestion: np.ndarray,
    voltage: np.ndarray,
    price: float,
    band_fraction: float,
    voll: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(p_low, p_high) per group ($/kWh) from DLMP components (rule in the module docstring)."""
    base = weights.T @ (energy + loss)
    scarcity = weights.T @ (congestion + voltage)
    h = band_fraction * price
    # negative where export must be curtailed: homes then curtail PV at Lmax
    p_low = np.maximum(-voll, base + np.minimum(scarcity, 0.0) - h)
    p_high = np.minimum(voll, base + np.maximum(scarcity, 0.0) + h)
    return p_low, np.maximum(p_high, p_low)
