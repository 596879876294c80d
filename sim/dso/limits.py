"""Network limits of the DSO and the reduced constraint rows both stages use.

:class:`DSOLimits` holds the voltage band (pu) and line ampacities (A). :class:`ConstraintRows`
turns the feeder's :class:`grid_models.LinearModel` into the rows a linear OPF needs, once per
feeder (constant), and evaluates the operating-point dependent margins (parameters):

* voltage rows: every phase of the LV busbar, of each bus with homes and of each junction
  bus (two or more child branches). In a radial feeder that only serves load, the voltage along
  a run of series branches moves monotonically between its ends, so these buses carry the
  extremes; the AC check of stage 2 still looks at every bus.
* branch rows: one row per (branch, phase) with homes downstream on that phase. Branches whose
  downstream sites are the same set carry the same current (no shunts), so they share one row
  whose headroom is the smallest of the members (the weakest conductor of the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from grid_models.linear import LinearModel, OperatingPoint
from sim.constants import DEFAULT_I_MARGIN_PCT, DEFAULT_V_MARGIN_PU
from sim.dso.errors import DSOError


@dataclass
class DSOLimits:
    """Operating limits: voltage band (pu, phase-to-neutral) and ampacity overrides (A).

    ``line_ampacity_a`` maps a pandapower line index to a rating that replaces the net's
    ``max_i_ka``; ``v_margin_pu`` and ``i_margin_pct`` pull the linear model's limits inside
    the true ones so the AC check rarely fails by a hair.
    """

    v_min_pu: float
    v_max_pu: float
    line_ampacity_a: Mapping[int, float] = field(default_factory=dict)
    v_margin_pu: float = DEFAULT_V_MARGIN_PU
    i_margin_pct: float = DEFAULT_I_MARGIN_PCT

    def validate(self, known_lines: np.ndarray) -> None:
        for name in ("v_min_pu", "v_max_pu", "v_margin_pu", "i_margin_pct"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise DSOError(f"limit {name} is not finite: {value}")
        if not 0.5 < self.v_min_pu < self.v_max_pu < 1.5:
            raise DSOError(
                f"voltage band must satisfy 0.5 < v_min_pu < v_max_pu < 1.5, got "
                f"[{self.v_min_pu}, {self.v_max_pu}]"
            )
        if self.v_margin_pu < 0 or self.i_margin_pct < 0:
            raise DSOError("v_margin_pu and i_margin_pct must be >= 0")
        for line, amp in self.line_ampacity_a.items():
            if line not in known_lines:
                raise DSOError(f"line_ampacity_a: unknown line index {line}")
            if not np.isfinite(amp) or amp <= 0:
                raise DSOError(f"line_ampacity_a: ampacity of line {line} must be > 0 A, got {amp}")


class ConstraintRows:
    """Constant row selection and incidence of the DSO's linear OPF (see module docstring)."""

    def __init__(self, model: LinearModel) -> None:
        self.model = model
        n_lv = len(model.lv_buses)
        n_children = np.bincount(model.branch_from[1:], minlength=n_lv)
        junction = np.flatnonzero(n_children >= 2)
        root = model.branch_to[0]
        buses = np.unique(np.r_[root, model.site_pos, junction])
        self.v_bus_pos = buses
        self.v_rows = (3 * buses[:, None] + np.arange(3)[None]).reshape(-1)
        self.kv_p = model.kv_p[self.v_rows]
        self.kv_q = model.kv_q[self.v_rows]
        # branch rows grouped by identical downstream site sets
        ti = model.ti.tocsr()
        groups: dict[tuple[int, ...], list[int]] = {}
        for r in range(ti.shape[0]):
            cols = ti.indices[ti.indptr[r] : ti.indptr[r + 1]]
            if cols.size:
                groups.setdefault(tuple(np.sort(cols)), []).append(r)
        self.b_members = list(groups.values())
        self.ti = ti[[m[0] for m in self.b_members]].toarray()

    @property
    def n_v(self) -> int:
        return len(self.v_rows)

    @property
    def n_b(self) -> int:
        return len(self.b_members)

    def ampacity(self, limits: DSOLimits) -> np.ndarray:
        """Per branch-phase row ampacity (A, length 3*n_branch) with the overrides applied."""
        amp = self.model.branch_ampacity_a.copy()
        if limits.line_ampacity_a:
            line_pos = {int(line): k for k, line in enumerate(self.model.branch_line) if k > 0}
            for line, value in limits.line_ampacity_a.items():
                if int(line) in line_pos:  # out-of-service lines carry nothing
                    amp[line_pos[int(line)]] = float(value)
        return np.repeat(amp, 3)

    def margins(
        self, op: OperatingPoint, limits: DSOLimits
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Parameter values at ``op``: (v_lo, v_hi) in pu^2 change allowed on the voltage rows,
        branch headroom (A) and the branch rows' current sensitivities (n_b, n_sites) in A per
        kW and per kvar of site demand."""
        vsq = op.vsq[self.v_rows]
        lo = (limits.v_min_pu + limits.v_margin_pu) ** 2 - vsq
        hi = (limits.v_max_pu - limits.v_margin_pu) ** 2 - vsq
        amp = self.ampacity(limits) * (1 - limits.i_margin_pct / 100)
        pick = np.empty(self.n_b, dtype=int)
        head = np.empty(self.n_b)
        for j, members in enumerate(self.b_members):
            room = amp[members] - op.i_a[members]
            k = int(np.argmin(room))
            head[j] = room[k]
            pick[j] = members[k]
        return lo, hi, head, op.di_p[pick], op.di_q[pick]
