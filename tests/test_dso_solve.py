"""The DSO's direct HiGHS path (sim.dso.solve.solve_highs) gives what cvxpy's
Problem.solve(solver=HIGHS) gives, to the last bit: primal values, every dual, the status,
slot after slot (each warm-started from the problem's previous solution)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from grid_models import build_feeder
from sim.dso import DSO, DSOLimits
from sim.dso.solve import HIGHS_TIME_LIMIT_S, solve_highs
from sim.dso.stage1 import Stage1Problem
from sim.dso.stage2 import Stage2Problem


def _values(problem: cp.Problem) -> list[np.ndarray]:
    out = [np.atleast_1d(np.asarray(v.value, dtype=float)) for v in problem.variables()]
    out += [np.atleast_1d(np.asarray(c.dual_value, dtype=float)) for c in problem.constraints]
    return out


def _both(reference: cp.Problem, direct: cp.Problem) -> str:
    """Solve both ways; both fail (HiGHS cannot solve it: the DSO then falls back to
    Clarabel) or both give the same result. Returns the status ("error" when both fail)."""
    failed = []
    for solve in (
        lambda: reference.solve(solver=cp.HIGHS, time_limit=HIGHS_TIME_LIMIT_S),
        lambda: solve_highs(direct),
    ):
        try:
            solve()
            failed.append(False)
        except cp.SolverError:
            failed.append(True)
    assert failed[0] == failed[1]
    if failed[0]:
        return "error"
    _same(reference, direct)
    return direct.status


def _same(a: cp.Problem, b: cp.Problem) -> None:
    assert a.status == b.status
    assert a.value == b.value
    for x, y in zip(_values(a), _values(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def eu() -> DSO:
    return DSO(build_feeder("ieee_eu_lv"))


def _demands(dso: DSO, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(14)
    homes = dso.feeder.n_homes
    # night load, evening peak, midday PV export (the over-voltage that curtails)
    scales = [(0.2, 0.8), (1.0, 4.5), (-5.0, -1.0), (2.0, 6.0), (-2.0, 1.0)]
    return [dso.feeder.site_totals(rng.uniform(*scales[k % len(scales)], homes)) for k in range(n)]


def test_stage1_direct_highs_equals_cvxpy_solve(eu):
    reference, direct = Stage1Problem(eu.rows, eu.voll), Stage1Problem(eu.rows, eu.voll)
    limits = DSOLimits(eu.feeder.v_min_pu, eu.feeder.v_max_pu)
    statuses = set()
    for k, demand in enumerate(_demands(eu, 6)):
        ac = eu._ac(demand, demand * eu.tan_forecast, k)
        op = eu.model.operating_point(ac, demand, demand * eu.tan_forecast)
        for problem in (reference, direct):
            lo, hi, head, ci, _ = problem.rows.margins(op, limits)
            problem.d.value = demand - op.p_kw
            problem.smax.value = np.maximum(demand, 0.0)
            problem.smin.value = np.minimum(demand, 0.0)
            problem.c.value = 0.12 * (1.0 + op.mlf_p)
            problem.lo.value, problem.hi.value = lo, hi
            problem.head.value, problem.ci.value = head, ci
        statuses.add(_both(reference.problem, direct.problem))
        assert np.all(direct.s.value <= direct.smax.value + 1e-9)
    assert statuses == {cp.OPTIMAL}


def test_stage2_direct_highs_equals_cvxpy_solve_feasible_or_not(eu):
    """Random parameters of the lambda QP, some with no feasible lambda (then the
    least-violation problem), each solved both ways."""
    rows = eu.rows
    reference, direct = Stage2Problem(rows, 3), Stage2Problem(rows, 3)
    rng = np.random.default_rng(3)
    seen = set()
    for k in range(8):
        floor = -0.05 if k % 2 else rng.uniform(-0.01, 0.03)  # odd: roomy; even: often none
        values = {
            "av": rng.normal(0.0, 0.005, (rows.n_v, 3)),
            "bv": rng.normal(0.0, 0.003, rows.n_v),
            "lo": np.full(rows.n_v, floor),
            "hi": np.full(rows.n_v, 0.02),
            "ab": rng.normal(0.0, 1.0, (rows.n_b, 3)),
            "bb": rng.normal(0.0, 1.0, rows.n_b),
            "head": np.full(rows.n_b, 5.0),
            "a": rng.uniform(-1.0, 2.0, 3),
            "b": rng.uniform(0.1, 2.0, 3),
        }
        for problem in (reference, direct):
            for name, value in values.items():
                getattr(problem, name).value = value
        status = _both(reference.problem, direct.problem)
        seen.add(status)
        if status == cp.INFEASIBLE:
            seen.add("least violation " + _both(reference.least_violation, direct.least_violation))
    print(sorted(seen))
    assert cp.OPTIMAL in seen and cp.INFEASIBLE in seen


def test_unset_parameter_is_an_error_not_a_silent_solve(eu):
    problem = Stage2Problem(eu.rows, 1).problem
    with pytest.raises(Exception, match="value"):
        solve_highs(problem)
