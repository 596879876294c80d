"""Solving the DSO's QPs: HiGHS first, Clarabel when HiGHS fails or stalls."""

from __future__ import annotations

import cvxpy as cp

from sim.dso.errors import DSOError

HIGHS_TIME_LIMIT_S = 5.0
_DONE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


def solve_with_fallback(problem: cp.Problem, what: str) -> None:
    """Solve `problem` in place. HiGHS gives reliable duals and is fast, but its QP method
    has stalled (minutes) and failed on a few badly scaled EU LV slots; those go to Clarabel."""
    try:
        problem.solve(solver=cp.HIGHS, time_limit=HIGHS_TIME_LIMIT_S)
        if problem.status in _DONE:
            return
    except cp.SolverError:
        pass
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.SolverError as exc:
        raise DSOError(f"{what} solver failed with HiGHS and Clarabel: {exc}") from exc
