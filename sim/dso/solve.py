"""Solving the DSO's QPs: HiGHS first, Clarabel when HiGHS fails or stalls."""

from __future__ import annotations

import os
import sys
from functools import cache

import cvxpy as cp

from sim.dso.errors import DSOError

HIGHS_TIME_LIMIT_S = 5.0
_DONE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


@cache
def _mute_highs_banner() -> None:
    """HiGHS prints its banner (version, licence) to the C-level stdout when the process
    creates its first solver, whatever the options (cvxpy sets ``log_to_console`` only
    afterwards). Create that first solver with file descriptor 1 on /dev/null."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve_with_fallback(problem: cp.Problem, what: str) -> None:
    """Solve `problem` in place, silently. HiGHS gives reliable duals and is fast, but its QP
    method has stalled (minutes) and failed on a few badly scaled EU LV slots; those go to
    Clarabel."""
    _mute_highs_banner()
    try:
        problem.solve(solver=cp.HIGHS, verbose=False, time_limit=HIGHS_TIME_LIMIT_S)
        if problem.status in _DONE:
            return
    except cp.SolverError:
        pass
    try:
        problem.solve(solver=cp.CLARABEL, verbose=False)
    except cp.SolverError as exc:
        raise DSOError(f"{what} solver failed with HiGHS and Clarabel: {exc}") from exc
