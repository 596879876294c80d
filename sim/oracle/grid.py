"""The feeder as the oracle sees it: the DSO's linear model around AC operating points, and
the ground-truth AC flow that judges a dispatch.

`GridModel` wraps the DSO's own sensitivities (`grid_models.LinearModel`, the rows of
`sim.dso.limits.ConstraintRows`; nothing is linearized anew): per slot, at the AC solution of
the oracle's last dispatch, the voltage rows (pu^2 per kW / kvar of site demand, constant per
feeder) with their margins, and the branch rows' currents as phasors (each downstream site's
conj(S/V) at the point's voltages) bounded by a polygon inside the ampacity. Its
`constraints` writes them for every slot of the horizon as cvxpy constraints on the site
demand, each slot with one slack in pu^2 on the voltage rows and one in A on the branch rows
(so a slot the linear model cannot keep is reported with its least worst excursion instead of
making the program infeasible). `ac` runs the passes' AC flow or the ground truth
(`runpp_3ph`, as the grid simulator); `slot_row` gives the co-simulation's slot row
(`sim.results.tables.grid_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from grid_models import Feeder, LinearModel, OperatingPoint, PowerFlowResult, run_power_flow
from sim.dso.limits import ConstraintRows, DSOLimits
from sim.results.tables import grid_rows

ACTIVE_BAND_PU = 0.03  # a voltage row enters the program within this distance of a limit
ACTIVE_LOADING = 0.5  # a branch row enters the program at this loading (of its ampacity)
CURRENT_DIRECTIONS = 12  # sides of the polygon that bounds a branch current phasor


@dataclass
class SlotLinearization:
    """The linear rows of one slot at an operating point: the voltage rows' allowed change
    (`ConstraintRows.margins`), and per branch row its ampacity less margins (A), its loading
    at the point (fraction of that) and each site's phase current per kW of demand at the
    point's voltages (complex, A per kW; per kvar it is -1j times that)."""

    op: OperatingPoint
    v_lo: np.ndarray  # pu^2 change allowed (voltage rows)
    v_hi: np.ndarray
    amp_a: np.ndarray  # (n_b,) A
    loading: np.ndarray  # (n_b,) current / amp_a at the point
    c_site: np.ndarray  # (n_sites,) complex A per kW


class GridModel:
    """The linear model of a feeder, the AC flow its passes linearize at (`engine`: "pgm",
    power-grid-model, about 15 times faster, or "pandapower") and the ground-truth AC flow
    (`runpp_3ph` on a separate net copy) that judges the result."""

    def __init__(
        self, feeder: Feeder, truth: Feeder, limits: DSOLimits, rating_factor: float,
        engine: str = "pgm",
    ) -> None:  # fmt: skip
        self.feeder = feeder
        self.truth = truth
        self._fast = None
        if engine == "pgm":
            from grid_models.pgm import PGMPowerFlow

            self._fast = PGMPowerFlow(feeder)
        self.limits = limits
        self.rating_factor = float(rating_factor)
        self.active: np.ndarray | None = None  # (n_v, T) voltage rows in the program
        self.active_b: np.ndarray | None = None  # (n_b, T) branch rows in the program
        self.model = LinearModel(feeder)
        self.rows = ConstraintRows(self.model)
        homes = feeder.homes.sort_values("home_id")
        incidence = np.zeros((feeder.n_sites, feeder.n_homes))
        incidence[homes.site.to_numpy(), homes.home_id.to_numpy()] = 1.0
        self.incidence = incidence  # sites x homes

    def site_demand(self, per_home: np.ndarray) -> np.ndarray:
        """Per-site totals (n_sites, T) of a per-home array (n_homes, T)."""
        return self.incidence @ per_home

    def ac(
        self, p_site_kw: np.ndarray, q_site_kvar: np.ndarray, slot: int, truth: bool = True
    ) -> PowerFlowResult:
        """The AC flow of one slot's site demand (kW, kvar): the ground truth, or with
        `truth=False` the passes' engine."""
        if not truth and self._fast is not None:
            return self._fast(p_site_kw, q_site_kvar, slot=slot)
        return run_power_flow(self.truth, p_site_kw, q_site_kvar, slot=slot)

    def slot_row(self, result: PowerFlowResult, round_: int) -> dict:
        """The co-simulation's slot row of the ground truth (voltage extremes per phase, line
        and transformer loading, lines over the study's rating)."""
        return grid_rows(self.truth, result, round_, self.rating_factor)["slots"][0]

    def linearize(
        self, result: PowerFlowResult, p_site_kw: np.ndarray, q_site_kvar: np.ndarray,
        extra_v_margin_pu: float = 0.0, extra_i_margin_pct: float = 0.0,
    ) -> SlotLinearization:  # fmt: skip
        """The rows of one slot at the AC solution `result` of `p_site_kw, q_site_kvar`, with
        the limits' margins raised by the given extras (pu, % of ampacity)."""
        op = self.model.operating_point(result, p_site_kw, q_site_kvar)
        lim = DSOLimits(
            self.limits.v_min_pu,
            self.limits.v_max_pu,
            line_ampacity_a=self.limits.line_ampacity_a,
            v_margin_pu=self.limits.v_margin_pu + extra_v_margin_pu,
            i_margin_pct=self.limits.i_margin_pct + extra_i_margin_pct,
        )
        lo, hi, _, _, _ = self.rows.margins(op, lim)
        amp = self.rows.ampacity(lim) * (1 - lim.i_margin_pct / 100)
        row_amp = np.array([amp[m].min() for m in self.rows.b_members])
        loading = np.array([(op.i_a[m] / amp[m]).max() for m in self.rows.b_members])
        model = self.model
        v = result.v_complex[np.searchsorted(result.bus, model.lv_buses)] * model.v_base
        c_site = 1e3 / np.conj(v[model.site_pos, model.site_phase])
        return SlotLinearization(op, lo, hi, np.maximum(row_amp, 0.0), loading, c_site)

    def constraints(
        self,
        p_site: cp.Variable,
        q_site: cp.Variable,
        lins: list[SlotLinearization],
        slack_v: cp.Variable,
        slack_i: cp.Variable,
    ) -> list:
        """The linear limits of every slot on site demand `p_site, q_site` (n_sites, T
        variables): `v_lo - slack_v <= K_P dp + K_Q dq <= v_hi + slack_v` (pu^2), dp, dq
        against each slot's operating point, and the branch rows (`_current_rows`, A).

        Voltage rows are an active set: a slot's row enters once its AC voltage at an
        operating point came within `ACTIVE_BAND_PU` of a limit, and stays for the later
        passes (the rows far from both limits cannot bind within one pass's move; a row that
        does shows in the AC check of that pass and enters at the next). Rows of all slots
        are one sparse block-diagonal matrix over the columns of the site demand."""
        n, ns = len(lins), self.feeder.n_sites
        vm = np.sqrt(np.stack([lin.op.vsq[self.rows.v_rows] for lin in lins], axis=1))
        near = (vm < self.limits.v_min_pu + ACTIVE_BAND_PU) | (
            vm > self.limits.v_max_pu - ACTIVE_BAND_PU
        )
        self.active = near if self.active is None else self.active | near
        slots, rows = np.nonzero(self.active.T)  # slot-major: the rows of slot 0 first
        vec_p, vec_q = cp.vec(p_site, order="F"), cp.vec(q_site, order="F")
        cons = []
        if len(rows):
            m_p = _row_blocks(self.rows.kv_p, rows, slots, ns, n)
            m_q = _row_blocks(self.rows.kv_q, rows, slots, ns, n)
            p0 = np.concatenate([lin.op.p_kw for lin in lins])
            q0 = np.concatenate([lin.op.q_kvar for lin in lins])
            lo = np.array([lins[t].v_lo[r] for r, t in zip(rows, slots, strict=True)])
            hi = np.array([lins[t].v_hi[r] for r, t in zip(rows, slots, strict=True)])
            spread = sp.csr_matrix(
                (np.ones(len(rows)), (np.arange(len(rows)), slots)), (len(rows), n)
            )
            dv = cp.Variable(len(rows), name="dv_pu2")
            cons += [
                dv == m_p @ vec_p + m_q @ vec_q - (m_p @ p0 + m_q @ q0),
                dv >= lo - spread @ slack_v,
                dv <= hi + spread @ slack_v,
            ]
        cons += self._current_rows(vec_p, vec_q, lins, slack_i)
        return cons

    def _current_rows(self, vec_p, vec_q, lins: list[SlotLinearization], slack_i) -> list:
        """Branch-row ampacity as a polygon in the current phasor: the row's current is the
        sum of its downstream sites' currents conj(S/V) (linear in p, q at the point's
        voltages), and `Re(exp(-j theta_k) I) <= amp cos(pi/K)` for K directions keeps |I|
        within the ampacity whatever the direction of the flow (a linearized |I| is wrong
        where the flow reverses: more load at an exporting point looked like less current).
        Active set as the voltage rows: a row enters once its loading at a point reached
        `ACTIVE_LOADING`."""
        n, ns = len(lins), self.feeder.n_sites
        near = np.stack([lin.loading >= ACTIVE_LOADING for lin in lins], axis=1)
        self.active_b = near if self.active_b is None else self.active_b | near
        slots, rows = np.nonzero(self.active_b.T)
        if not len(rows):
            return []
        theta = 2 * np.pi * np.arange(CURRENT_DIRECTIONS) / CURRENT_DIRECTIONS
        turn = np.exp(-1j * theta)  # (K,)
        ti = self.rows.ti > 0
        r_idx, c_idx, vp, vq, bound, slot_of = [], [], [], [], [], []
        m = 0
        for j, t in zip(rows, slots, strict=True):
            sites = np.flatnonzero(ti[j])
            c = lins[t].c_site[sites]
            coef = turn[:, None] * c[None, :]  # (K, sites): current per kW in direction k
            r_idx.append(np.repeat(np.arange(m, m + len(turn)), len(sites)))
            c_idx.append(np.tile(t * ns + sites, len(turn)))
            vp.append(np.real(coef).reshape(-1))
            vq.append(np.real(-1j * coef).reshape(-1))
            bound.append(np.full(len(turn), lins[t].amp_a[j] * np.cos(np.pi / len(turn))))
            slot_of.append(np.full(len(turn), t))
            m += len(turn)
        shape = (m, ns * n)
        rr, cc = np.concatenate(r_idx), np.concatenate(c_idx)
        a_p = sp.csr_matrix((np.concatenate(vp), (rr, cc)), shape=shape)
        a_q = sp.csr_matrix((np.concatenate(vq), (rr, cc)), shape=shape)
        slot_of = np.concatenate(slot_of)
        spread = sp.csr_matrix((np.ones(m), (np.arange(m), slot_of)), shape=(m, n))
        return [a_p @ vec_p + a_q @ vec_q <= np.concatenate(bound) + spread @ slack_i]


def _row_blocks(k: np.ndarray, rows: np.ndarray, slots: np.ndarray, ns: int, n: int):
    """Sparse matrix whose i-th row is `k[rows[i]]` at the columns of slot `slots[i]` in the
    column-major vector of an (ns, n) site-demand matrix."""
    vals = k[rows]  # (m, ns)
    cols = slots[:, None] * ns + np.arange(ns)[None, :]
    r = np.repeat(np.arange(len(rows)), ns)
    return sp.csr_matrix((vals.reshape(-1), (r, cols.reshape(-1))), shape=(len(rows), ns * n))


def ac_excess(row: dict, v_band: tuple[float, float], rating_pct: float) -> tuple[float, float]:
    """How far one slot's ground truth is outside the limits: (voltage pu beyond the band on
    either side, line or transformer loading % beyond the rating), 0 when inside."""
    v_min, v_max = v_band
    lows = min(row[f"v_min_{ph}_pu"] for ph in "abc")
    highs = max(row[f"v_max_{ph}_pu"] for ph in "abc")
    dv = max(v_min - lows, highs - v_max, 0.0)
    di = max(row["max_line_loading_pct"] - rating_pct, row["max_trafo_loading_pct"] - 100.0, 0.0)
    return dv, di
