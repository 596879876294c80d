"""DSO stage 2: the dispatch factor lambda of each group from the groups' revealed bids.

A group's bid is its total demand (kW) at K rising prices, K = 2 (the seed paper's band,
``[Lmin, Lmax]``) or 5 (the group mode's, with the reactive demand at each point); the DSO
spreads the totals over the group's member sites by public weights ``W[s, g]`` (share of g's
members at site s). Each of a group's K - 1 segments is a variable in [0, 1], filled from Lmin
up; a segment's welfare is the homes' price there minus the marginal supply cost of its demand
(energy and losses at the current linearization), concave, so segments fill in order
(``sim.dso.dso._Segments``). Network scarcity is not charged again in the objective: voltage
and ampacity limits are explicit constraints on the linear model (the same rows and margins as
stage 1). ``mode="single"`` ties every group to one lambda (the paper's); ``mode="group"``
clears one per group. The QP is compiled once per feeder and size (DPP) and solved through
HiGHS (``sim.dso.solve``).

AC check (``DSO.stage2_points``): the dispatch is verified with the DSO's AC engine
(``dso.ac_engine``, power-grid-model by default) against the limits less each margin in full;
on a violation the linear model is re-linearized at that AC solution and the QP re-solved, at
most ``max_iter`` times. If no lambda meets the linear limits, the least-violating dispatch is
solved instead and checked once; ``infeasible=True`` when its AC check still violates. After
``max_iter`` AC checks with violations the last dispatch is returned with ``ac_ok=False`` and
the violations named.
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
class Stage2Result:
    """Outcome of stage 2 (see module docstring).

    lam: the single lambda (mode single) or the largest group lambda; lam_group (G,) per group.
    dispatch_p_kw: (n_sites,) total site demand at the dispatch (kW). cost_g: ($/kWh) supply
    cost per group; welfare_per_h: objective value ($/h). vm_pu (n_bus, 3) at ``bus``,
    line_loading_pct (n_line, 3) against the DSO's ampacities, trafo_loading_pct (3,): the final
    AC check.
    v_pred_pu: linear-model voltages at the dispatch on the monitored rows, v_ac_pu: AC there.
    """

    slot: int | None
    mode: str
    lam: float
    lam_group: np.ndarray
    dispatch_p_kw: np.ndarray
    dispatch_q_kvar: np.ndarray
    cost_g: np.ndarray
    welfare_per_h: float
    vm_pu: np.ndarray
    bus: np.ndarray  # bus labels of vm_pu's rows
    line_loading_pct: np.ndarray
    trafo_loading_pct: np.ndarray
    p_sub_kw: np.ndarray  # (3,) the feeder's draw at the substation in the DSO's AC check
    q_sub_kvar: np.ndarray
    v_pred_pu: np.ndarray
    v_ac_pu: np.ndarray
    ac_ok: bool
    violations: str
    iterations: int
    infeasible: bool


class Stage2Problem:
    """Compiled lambda QP for ``n_lam`` lambdas (1 or the number of groups)."""

    def __init__(self, rows: ConstraintRows, n_lam: int, eps: float = 1e-7) -> None:
        self.rows = rows
        self.lam = cp.Variable(n_lam, name="lambda")
        self.av = cp.Parameter((rows.n_v, n_lam), name="A_v")
        self.bv = cp.Parameter(rows.n_v, name="b_v")
        self.lo = cp.Parameter(rows.n_v, name="v_lo")
        self.hi = cp.Parameter(rows.n_v, name="v_hi")
        self.ab = cp.Parameter((rows.n_b, n_lam), name="A_b")
        self.bb = cp.Parameter(rows.n_b, name="b_b")
        self.head = cp.Parameter(rows.n_b, name="headroom")
        self.a = cp.Parameter(n_lam, name="welfare_lin")
        self.b = cp.Parameter(n_lam, nonneg=True, name="welfare_quad")
        dv = self.av @ self.lam + self.bv
        welfare = self.a @ self.lam - 0.5 * self.b @ cp.square(self.lam)
        self.problem = cp.Problem(
            cp.Maximize(welfare - eps * cp.sum_squares(self.lam)),
            [
                dv >= self.lo,
                dv <= self.hi,
                self.ab @ self.lam + self.bb <= self.head,
                self.lam >= 0,
                self.lam <= 1,
            ],
        )
        if not self.problem.is_dpp():
            raise DSOError("stage 2 problem is not DPP")
        # When no lambda meets every limit: the lambda that violates them least (sum of
        # violations in the rows' own units). With reverse flow this need not be lambda = 0.
        self.slack_lo = cp.Variable(rows.n_v, nonneg=True)
        self.slack_hi = cp.Variable(rows.n_v, nonneg=True)
        self.slack_b = cp.Variable(rows.n_b, nonneg=True)
        self.least_violation = cp.Problem(
            cp.Minimize(
                cp.sum(self.slack_lo)
                + cp.sum(self.slack_hi)
                + cp.sum(self.slack_b)
                + eps * cp.sum_squares(self.lam)
            ),
            [
                dv + self.slack_lo >= self.lo,
                dv - self.slack_hi <= self.hi,
                self.ab @ self.lam + self.bb - self.slack_b <= self.head,
                self.lam >= 0,
                self.lam <= 1,
            ],
        )

    def set_values(
        self,
        op: OperatingPoint,
        limits: DSOLimits,
        p_fixed: np.ndarray,
        q_fixed: np.ndarray,
        dp: np.ndarray,
        dq: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
    ) -> None:
        """Set parameters; ``p_fixed``/``q_fixed`` site demand at lambda = 0, ``dp``/``dq``
        (n_sites, n_lam) its change per unit lambda."""
        rows = self.rows
        lo, hi, head, cp_, cq_ = rows.margins(op, limits)
        dp0 = p_fixed - op.p_kw
        dq0 = q_fixed - op.q_kvar
        self.bv.value = rows.kv_p @ dp0 + rows.kv_q @ dq0
        self.av.value = rows.kv_p @ dp + rows.kv_q @ dq
        self.bb.value = cp_ @ dp0 + cq_ @ dq0
        self.ab.value = cp_ @ dp + cq_ @ dq
        self.lo.value, self.hi.value, self.head.value = lo, hi, head
        self.a.value, self.b.value = a, b

    def solve(self) -> tuple[np.ndarray, float, bool]:
        """(lambda, welfare $/h, feasible): the welfare optimum within the limits, or, when no
        lambda meets them, the least-violating lambda with feasible False."""
        solve_with_fallback(self.problem, "stage 2")
        feasible = self.problem.status not in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
        if not feasible:
            solve_with_fallback(self.least_violation, "stage 2")
        solved = self.problem if feasible else self.least_violation
        if solved.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise DSOError(f"stage 2 problem {solved.status}")
        lam = np.clip(self.lam.value, 0.0, 1.0)
        welfare = float(self.a.value @ lam - 0.5 * self.b.value @ lam**2)
        return lam, welfare, feasible

    def predicted_vsq(self, op: OperatingPoint, lam: np.ndarray) -> np.ndarray:
        """Linear squared voltages (pu^2) on the monitored rows at ``lam``."""
        return op.vsq[self.rows.v_rows] + self.av.value @ lam + self.bv.value
