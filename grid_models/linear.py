"""Linear three-phase model of a radial feeder around a solved AC operating point.

Choice and justification
------------------------
Voltage sensitivities are those of LinDist3Flow (Gan & Low 2014; Sankur, Dobbe, Arnold et al.
2016): on a branch ``l`` with 3x3 phase impedance ``Z_l`` (built from the line's sequence
impedances, ``Z_abc = A diag(z0, z1, z1) A^-1``, the same symmetric-line data ``runpp_3ph``
uses) the squared voltage magnitudes drop as ``v_to = v_from - M_P,l P_l - M_Q,l Q_l`` with
``M_P = 2 Re(G o conj(Z))``, ``M_Q = -2 Im(G o conj(Z))`` and ``G = alpha alpha^H``,
``alpha = (1, a^2, a)``; branch flows ``P_l, Q_l`` are the sums of the demand downstream. So the
phase coupling through mutual impedance (neutral shift) is kept, losses in the flows are
neglected. The model is anchored at an AC solution: ``v^2(p) = v_AC^2 + K_P dp + K_Q dq``,
so it is exact at the operating point and only the sensitivities are approximate. The
sensitivity matrices depend on the network only (constant per feeder); the operating-point
quantities (voltages, currents, loss factors) are vectors, which is what lets the DSO compile
its cvxpy problems once (DPP) and re-linearize by updating parameters.

Branch currents are linearized from the AC phasors: the current of branch ``l`` phase ``phi``
is the sum of the downstream site currents ``conj(S/V)`` on that phase, and
``d|I|/dP = Re(I/V)/|I|``, ``d|I|/dQ = -Im(I/V)/|I|`` with ``V`` the branch's downstream-end
voltage, plus the rise of all downstream load currents with the voltage drop (kept on the
downstream same-phase pattern). Marginal loss factors come from the AC solution: with
``L = sum_l I_l^H R_l I_l``,
``dL/dP_s = 2 Re(sum_{l in path(s)} (R_l I_l)_phi / V_s)`` and
``dL/dQ_s = -2 Im(...)`` (currents change by ``dP / conj(V_s)``), plus the effect of the
voltage drop on all constant-power load currents (``dI_k = -I_k d|V_k|/|V_k|``, with
``d|V_k|`` from the voltage sensitivities).

Sign convention: ``p_kw``/``q_kvar`` are site *demand* (consumption positive); an injection is
the negative. Branch 0 is the MV/LV transformer (referred to the LV side; Dyn: its zero-sequence
impedance seen from the LV star, with pandapower's zero-sequence magnetizing branch), branches
1.. are the in-service lines.
The measured error against ``runpp_3ph`` is in ``tests/test_grid_linear.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from grid_models.errors import GridModelError
from grid_models.feeders import PHASES, Feeder
from grid_models.powerflow import PowerFlowResult

_A = np.exp(2j * np.pi / 3)
ALPHA = np.array([1.0, _A**2, _A])
GAMMA = np.outer(ALPHA, ALPHA.conj())


def phase_impedance(z1: complex, z0: complex) -> np.ndarray:
    """3x3 phase impedance (ohm) of a symmetric element from its sequence impedances."""
    zs = (z0 + 2 * z1) / 3
    zm = (z0 - z1) / 3
    return np.full((3, 3), zm, dtype=complex) + np.eye(3) * (zs - zm)


def _dyn_zero_seq(trafo, z0k: complex) -> complex:
    """Zero-sequence impedance of a Dyn transformer seen from its LV star (ohm).

    As pandapower's T model: LV leakage part ``(1 - si0) z0k`` in series with the HV part
    ``si0 z0k`` (closed by the delta) in parallel with the zero-sequence magnetizing impedance
    ``|z0k| mag0_percent/100`` at r/x ``mag0_rx``; no magnetizing data means an open branch.
    """
    ratio = float(trafo.get("mag0_percent", np.nan)) / 100
    si0 = float(trafo.get("si0_hv_partial", np.nan))
    if not np.isfinite(ratio) or not np.isfinite(si0):
        return z0k
    rx = float(trafo.get("mag0_rx", 0.0))
    x_m = abs(z0k) * ratio / np.sqrt(rx**2 + 1)
    z3 = x_m * rx + 1j * x_m
    z1 = si0 * z0k
    return (1 - si0) * z0k + z1 * z3 / (z1 + z3)


@dataclass
class OperatingPoint:
    """Operating-point vectors of the linear model (from one AC power flow).

    vsq: (3*n_lv,) squared voltage magnitude (pu^2), rows bus-major (bus position*3 + phase).
    i_a: (3*n_branch,) branch current magnitude (A), rows branch-major.
    di_p, di_q: (3*n_branch, n_sites) current magnitude sensitivity (A per kW / per kvar).
    mlf_p, mlf_q: (n_sites,) marginal loss factors (kW of loss per kW / per kvar of demand).
    losses_kw: total losses (kW); p_kw, q_kvar: (n_sites,) the demand of the point.
    """

    vsq: np.ndarray
    i_a: np.ndarray
    di_p: np.ndarray
    di_q: np.ndarray
    mlf_p: np.ndarray
    mlf_q: np.ndarray
    losses_kw: float
    p_kw: np.ndarray
    q_kvar: np.ndarray


class LinearModel:
    """LinDist3Flow sensitivities of one feeder plus AC-anchored operating points.

    Constant attributes (network only):
      lv_buses (n_lv,) bus labels; kv_p, kv_q (3*n_lv, n_sites): d|V|^2 (pu^2) per kW / kvar of
      site demand; ti (3*n_branch, n_sites) 0/1: site is downstream of branch on that phase;
      branch_ampacity_a (n_branch,); branch_line (n_branch,) line index (-1 for the transformer).
    """

    def __init__(self, feeder: Feeder) -> None:
        net = feeder.net
        self.feeder = feeder
        trafo = net.trafo.iloc[0]
        root = int(trafo.lv_bus)
        lv_kv = float(net.bus.vn_kv.at[root])
        lines = net.line[net.line.in_service]
        lv = net.bus.index[np.isclose(net.bus.vn_kv, lv_kv)].to_numpy()
        if not np.isclose(net.bus.vn_kv.loc[np.r_[lines.from_bus, lines.to_bus]], lv_kv).all():
            raise GridModelError("linear model: all lines must be at the transformer LV voltage")
        self.v_base = lv_kv * 1e3 / np.sqrt(3.0)  # V, phase-to-neutral
        self.lv_buses = lv
        pos = {b: i for i, b in enumerate(lv)}
        self.bus_pos = pos
        n = len(lv)
        # branch impedances (ohm, LV side): transformer first, then lines
        zb = lv_kv**2 / trafo.sn_mva
        z1 = trafo.vkr_percent + 1j * np.sqrt(trafo.vk_percent**2 - trafo.vkr_percent**2)
        z0 = trafo.vkr0_percent + 1j * np.sqrt(trafo.vk0_percent**2 - trafo.vkr0_percent**2)
        zmat = [
            phase_impedance(z1 * zb / 100, _dyn_zero_seq(trafo, z0 * zb / 100)) / trafo.parallel
        ]
        amp = [trafo.sn_mva * 1e6 / (3 * self.v_base) * trafo.parallel]
        adj: dict[int, list[tuple[int, int]]] = {i: [] for i in range(n)}
        for k, ln in enumerate(lines.itertuples(), start=1):
            length = ln.length_km / ln.parallel
            zl1 = (ln.r_ohm_per_km + 1j * ln.x_ohm_per_km) * length
            zl0 = (ln.r0_ohm_per_km + 1j * ln.x0_ohm_per_km) * length
            zmat.append(phase_impedance(zl1, zl0))
            amp.append(ln.max_i_ka * 1e3 * ln.df * ln.parallel)
            f, t = pos[ln.from_bus], pos[ln.to_bus]
            adj[f].append((t, k))
            adj[t].append((f, k))
        self.z = np.array(zmat)
        self.branch_ampacity_a = np.array(amp, dtype=float)
        self.branch_line = np.r_[-1, lines.index.to_numpy()]
        nb = len(zmat)
        # orient the tree from the LV busbar (BFS), collect each bus's path of branches
        parent_branch = np.full(n, -1)
        to_bus = np.full(nb, -1)
        from_bus = np.full(nb, -1)  # -1: the transformer's MV side
        to_bus[0] = pos[root]
        paths: list[list[int]] = [[] for _ in range(n)]
        paths[pos[root]] = [0]
        seen = np.zeros(n, dtype=bool)
        seen[pos[root]] = True
        queue = deque([pos[root]])
        while queue:
            u = queue.popleft()
            for w, k in adj[u]:
                if seen[w]:
                    if parent_branch[u] != k:
                        raise GridModelError(f"feeder {feeder.name!r} is not radial (line loop)")
                    continue
                seen[w] = True
                parent_branch[w] = k
                to_bus[k] = w
                from_bus[k] = u
                paths[w] = paths[u] + [k]
                queue.append(w)
        if not seen.all():
            missing = lv[~seen][:10].tolist()
            raise GridModelError(f"feeder {feeder.name!r}: buses not connected to LV: {missing}")
        self.branch_to = to_bus  # bus positions (index into lv_buses)
        self.branch_from = from_bus
        rows = np.concatenate([np.asarray(p, dtype=int) for p in paths])
        cols = np.repeat(np.arange(n), [len(p) for p in paths])
        self.path = sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(nb, n))

        sites = feeder.sites
        self.site_pos = np.array([pos[b] for b in sites.bus])
        self.site_phase = sites.phase.map({p: i for i, p in enumerate(PHASES)}).to_numpy()
        ns = len(sites)
        ts = self.path[:, self.site_pos].tocsc()  # branch on path of site's bus
        # voltage sensitivities, pu^2 per kW (kvar) of demand: -sum over common path of M
        mp = 2 * np.real(GAMMA[None] * np.conj(self.z))
        mq = -2 * np.imag(GAMMA[None] * np.conj(self.z))
        scale = 1e3 / self.v_base**2
        kv_p = np.zeros((3 * n, ns))
        kv_q = np.zeros((3 * n, ns))
        pt = self.path.T.tocsr()
        for phi in range(3):
            wp = ts.multiply(mp[:, phi, self.site_phase][:, :]).tocsc()
            wq = ts.multiply(mq[:, phi, self.site_phase][:, :]).tocsc()
            kv_p[phi::3] = -(pt @ wp).toarray() * scale
            kv_q[phi::3] = -(pt @ wq).toarray() * scale
        self.kv_p = kv_p
        self.kv_q = kv_q
        tsc = ts.tocoo()
        ti = sp.csr_matrix(
            (np.ones(tsc.nnz), (3 * tsc.row + self.site_phase[tsc.col], tsc.col)),
            shape=(3 * nb, ns),
        )
        self.ti = ti
        self._ts = ts

    @property
    def n_branch(self) -> int:
        return len(self.z)

    def operating_point(
        self, result: PowerFlowResult, p_kw: np.ndarray, q_kvar: np.ndarray
    ) -> OperatingPoint:
        """Operating-point vectors from an AC result solved for site demand ``p_kw, q_kvar``."""
        bus_rows = np.searchsorted(result.bus, self.lv_buses)
        v = result.v_complex[bus_rows] * self.v_base  # (n_lv, 3) volts
        vsite = v[self.site_pos, self.site_phase]
        s_site = (np.asarray(p_kw) + 1j * np.asarray(q_kvar)) * 1e3  # VA per phase
        i_site = np.conj(s_site / vsite)
        i_br = (self.ti @ i_site).reshape(-1, 3)  # (n_branch, 3) phasors, downstream positive
        v_to = v[self.branch_to]
        mag = np.abs(i_br)
        ratio = i_br / v_to
        safe = np.where(mag > 1e-9, mag, 1.0)
        ci_p = np.where(mag > 1e-9, np.real(ratio) / safe, 1.0 / np.abs(v_to)) * 1e3
        ci_q = np.where(mag > 1e-9, -np.imag(ratio) / safe, 0.0) * 1e3
        ri = np.einsum("lij,lj->li", np.real(self.z), i_br)
        u = (self.path.T @ ri)[self.site_pos, self.site_phase]
        mlf_p = 2 * np.real(u / vsite)
        mlf_q = -2 * np.imag(u / vsite)
        # second term: a lower voltage raises every constant-power load current,
        # dI_k = -I_k d|V_k|/|V_k|, with d|V_k| from the voltage sensitivities
        w = -2 * np.real(np.conj(u) * i_site) / 1e3  # kW of loss per unit relative voltage
        srow = 3 * self.site_pos + self.site_phase
        vsq_site = np.abs(vsite / self.v_base) ** 2
        mlf_p = mlf_p + w @ (self.kv_p[srow] / (2 * vsq_site[:, None]))
        mlf_q = mlf_q + w @ (self.kv_q[srow] / (2 * vsq_site[:, None]))
        # second term: the voltage drop raises every downstream constant-power load current,
        # d|I_l| += sum_k -Re(conj(I_l) I_k)/|I_l| d|V_k|/|V_k| over sites k below l
        i_flat = i_br.reshape(-1)
        mag_flat = np.where(mag.reshape(-1) > 1e-9, mag.reshape(-1), np.inf)
        tic = self.ti.tocoo()
        g = -np.real(np.conj(i_flat[tic.row]) * i_site[tic.col]) / mag_flat[tic.row]
        gmat = sp.csr_matrix((g, (tic.row, tic.col)), shape=self.ti.shape)
        rel_p = self.kv_p[srow] / (2 * vsq_site[:, None])
        rel_q = self.kv_q[srow] / (2 * vsq_site[:, None])
        # kept on the structural pattern (sites downstream on the branch's phase): the cross
        # terms through the other phases' voltages are ~2 % and would spread congestion
        # prices to sites that do not load the branch
        mask = self.ti.toarray() > 0
        di_p = np.where(mask, ci_p.reshape(-1)[:, None] + gmat @ rel_p, 0.0)
        di_q = np.where(mask, ci_q.reshape(-1)[:, None] + gmat @ rel_q, 0.0)
        i_a = mag.copy()
        line_rows = np.searchsorted(result.line, self.branch_line[1:])
        i_a[1:] = result.line_i_a[line_rows]
        i_a[0] = result.trafo_loading_pct / 100 * self.branch_ampacity_a[0]
        return OperatingPoint(
            vsq=(result.vm_pu[bus_rows] ** 2).reshape(-1),
            i_a=i_a.reshape(-1),
            di_p=di_p,
            di_q=di_q,
            mlf_p=mlf_p,
            mlf_q=mlf_q,
            losses_kw=result.losses_kw,
            p_kw=np.asarray(p_kw, dtype=float).copy(),
            q_kvar=np.asarray(q_kvar, dtype=float).copy(),
        )

    def predict(
        self, op: OperatingPoint, p_kw: np.ndarray, q_kvar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Linear prediction at demand ``p_kw, q_kvar``: (vm_pu (n_lv,3), i_a (n_branch,3), kW)."""
        dp = np.asarray(p_kw) - op.p_kw
        dq = np.asarray(q_kvar) - op.q_kvar
        vsq = op.vsq + self.kv_p @ dp + self.kv_q @ dq
        i_a = op.i_a + op.di_p @ dp + op.di_q @ dq
        loss = op.losses_kw + op.mlf_p @ dp + op.mlf_q @ dq
        return np.sqrt(np.maximum(vsq, 0.0)).reshape(-1, 3), i_a.reshape(-1, 3), float(loss)

    def voltage_sensitivity_pu(self, op: OperatingPoint) -> tuple[np.ndarray, np.ndarray]:
        """d|V| (pu) per kW and per kvar of site demand at ``op``: (3*n_lv, n_sites) each."""
        inv = 1.0 / (2.0 * np.sqrt(op.vsq))[:, None]
        return self.kv_p * inv, self.kv_q * inv

    def current_sensitivity(self, op: OperatingPoint) -> tuple[np.ndarray, np.ndarray]:
        """d|I| (A) per kW and per kvar of site demand at ``op``: (3*n_branch, n_sites) each."""
        return op.di_p, op.di_q
