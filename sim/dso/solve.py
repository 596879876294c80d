"""Solving the DSO's QPs: HiGHS first, Clarabel when HiGHS fails or stalls.

HiGHS is called on the problem's compiled data directly (:func:`solve_highs`): the
parameters are applied to the DPP program cvxpy compiled once (``get_problem_data``), the
model goes to HiGHS as arrays in one ``passModel`` call, and the result is unpacked into the
problem's variables and constraints by cvxpy's own inversion. That is the solve cvxpy's
``Problem.solve(solver=HIGHS)`` does (the same matrices, options and warm start from the
problem's previous HiGHS solution, so the same iterates and answers to the last bit;
``tests/test_dso_solve.py`` compares) without its per-call costs: building the model field
by field through Python lists (15-20 ms for stage 1's 1,300 x 165 dense rows) and the
solving chain's checks.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import cache
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sim.dso.errors import DSOError

HIGHS_TIME_LIMIT_S = 5.0
_DONE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_WARM = "blockhems_highs"  # the problem's previous HiGHS result, for the warm start


def solve_highs(problem: cp.Problem, time_limit: float = HIGHS_TIME_LIMIT_S) -> None:
    """Solve `problem` (a compiled DPP problem with every parameter set) with HiGHS in
    place; raises ``cp.SolverError`` when HiGHS cannot run it."""
    import highspy as hp
    from cvxpy import settings as s
    from cvxpy.reductions.solvers.qp_solvers.highs_qpif import HIGHS
    from cvxpy.reductions.solvers.solving_chain import _validate_problem_data

    data, chain, inverse = problem.get_problem_data(cp.HIGHS)
    try:
        _validate_problem_data(data)
    except ValueError as exc:
        raise cp.SolverError(str(exc)) from exc
    inf = hp.kHighsInf
    a = sp.vstack([data[s.A], data[s.F]]).tocsc()
    n_col, n_row = a.shape[1], a.shape[0]
    b, g = data[s.B], data[s.G]
    lb, ub = data[s.LOWER_BOUNDS], data[s.UPPER_BOUNDS]
    p = data[s.P]
    hessian = sp.triu(p, format="csc") if p.count_nonzero() else sp.csc_matrix((n_col, n_col))
    solver = hp.Highs()
    solver.setOptionValue("log_to_console", False)
    solver.setOptionValue("time_limit", float(time_limit))
    status = solver.passModel(
        n_col,
        n_row,
        a.nnz,
        hessian.nnz,
        int(hp.MatrixFormat.kColwise),
        int(hp.HessianFormat.kTriangular),
        int(hp.ObjSense.kMinimize),
        0.0,  # cvxpy adds the offset when it inverts the result
        np.asarray(data[s.Q], dtype=float),
        np.full(n_col, -inf) if lb is None else np.asarray(lb, dtype=float),
        np.full(n_col, inf) if ub is None else np.asarray(ub, dtype=float),
        np.concatenate([b, np.full(g.shape, -inf)]),
        np.concatenate([b, g]),
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data.astype(float),
        hessian.indptr.astype(np.int32),
        hessian.indices.astype(np.int32),
        hessian.data.astype(float),
        np.zeros(n_col, dtype=np.int32),  # every column continuous
    )
    if status == hp.HighsStatus.kError:
        raise cp.SolverError("HiGHS refused the model")
    cache: dict[str, Any] = problem._solver_cache  # cvxpy's per-problem solver cache
    previous = cache.get(_WARM)
    if previous is not None:
        solver.setSolution(previous["solution"])
    try:
        solver.run()
        results = {
            "solution": solver.getSolution(),
            "info": solver.getInfo(),
            "model_status": solver.getModelStatus().name,
            "run_time": solver.getRunTime(),
        }
    except ValueError as exc:
        raise cp.SolverError(exc) from exc
    ok = HIGHS.STATUS_MAP.get(results["model_status"], s.SOLVER_ERROR) in s.SOLUTION_PRESENT
    if ok:
        cache[_WARM] = results
    else:  # cvxpy warm-starts only from a result that holds a solution
        cache.pop(_WARM, None)
    with warnings.catch_warnings():  # an inaccurate solution is judged by its status
        warnings.simplefilter("ignore", UserWarning)
        problem.unpack_results(results, chain, inverse)


WARM_FIELDS = ("col_value", "col_dual", "row_value", "row_dual")


def warm_start(problem: cp.Problem) -> dict[str, np.ndarray] | None:
    """The HiGHS solution the next solve of `problem` starts from (None: a cold start), as
    arrays: a resumed run restores it (``set_warm_start``) to take the same iterates."""
    previous = problem._solver_cache.get(_WARM)
    if previous is None:
        return None
    solution = previous["solution"]
    out = {name: np.asarray(getattr(solution, name), dtype=float) for name in WARM_FIELDS}
    out["valid"] = np.array([solution.value_valid, solution.dual_valid])
    return out


def set_warm_start(problem: cp.Problem, state: dict[str, np.ndarray] | None) -> None:
    """Make `state` (from ``warm_start``) the solution the next HiGHS solve starts from."""
    import highspy as hp

    if state is None:
        problem._solver_cache.pop(_WARM, None)
        return
    solution = hp.HighsSolution()
    for name in WARM_FIELDS:
        setattr(solution, name, [float(v) for v in state[name]])
    solution.value_valid, solution.dual_valid = (bool(v) for v in state["valid"])
    problem._solver_cache[_WARM] = {"solution": solution}


@cache
def mute_highs_banner() -> None:
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
    mute_highs_banner()
    try:
        solve_highs(problem)
        if problem.status in _DONE:
            return
    except cp.SolverError:
        pass
    try:
        problem.solve(solver=cp.CLARABEL, verbose=False)
    except cp.SolverError as exc:
        raise DSOError(f"{what} solver failed with HiGHS and Clarabel: {exc}") from exc
