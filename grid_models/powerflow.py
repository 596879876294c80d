"""Three-phase AC power flow wrapper around pandapower's ``runpp_3ph``.

``run_power_flow(feeder, p_kw, q_kvar, slot=...)`` takes per-site active/reactive demand
(kW, kvar; ``feeder.site_totals`` sums per-home values) and returns a :class:`PowerFlowResult`
of numpy arrays. Non-convergence raises :class:`PowerFlowError` naming the slot and the largest
injections; a result is never returned silently from a failed run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pandapower as pp

from grid_models.errors import GridModelError, PowerFlowError
from grid_models.feeders import PHASES, Feeder

HAS_NUMBA = importlib.util.find_spec("numba") is not None


@dataclass
class PowerFlowResult:
    """Result of one three-phase AC power flow; arrays are indexed like ``bus``/``line``.

    vm_pu, va_deg: (n_bus, 3) phase-to-neutral voltage magnitude (pu) and angle (degree).
    line_i_a: (n_line, 3) phase current magnitude at the from end (A).
    line_loading_pct: (n_line, 3) phase current over ampacity (%).
    trafo_loading_pct: (3,) transformer loading per phase (%).
    losses_kw: total active losses (lines + transformer), kW.
    p_sub_kw, q_sub_kvar: (3,) power drawn from the external grid per phase (kW, kvar).
    """

    slot: int | None
    bus: np.ndarray
    line: np.ndarray
    vm_pu: np.ndarray
    va_deg: np.ndarray
    line_i_a: np.ndarray
    line_loading_pct: np.ndarray
    trafo_loading_pct: np.ndarray
    losses_kw: float
    p_sub_kw: np.ndarray
    q_sub_kvar: np.ndarray

    @property
    def v_complex(self) -> np.ndarray:
        """(n_bus, 3) complex voltages in pu."""
        return self.vm_pu * np.exp(1j * np.deg2rad(self.va_deg))


def _check_site_array(values: np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise GridModelError(f"{what} has shape {arr.shape}, expected ({n},) (one per site)")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise GridModelError(f"{what} is not finite at sites {bad[:10].tolist()}")
    return arr


def set_site_demand(feeder: Feeder, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
    """Write per-site demand (kW, kvar) into the net's asymmetric loads."""
    p = _check_site_array(p_kw, feeder.n_sites, "p_kw")
    q = _check_site_array(q_kvar, feeder.n_sites, "q_kvar")
    net = feeder.net
    rows = feeder.site_load.loc[feeder.sites.bus.to_numpy()].to_numpy()
    for ph in PHASES:
        on = (feeder.sites.phase == ph).to_numpy()
        pc = np.zeros(len(net.asymmetric_load))
        qc = np.zeros(len(net.asymmetric_load))
        idx = net.asymmetric_load.index.get_indexer(rows[on])
        np.add.at(pc, idx, p[on] / 1e3)
        np.add.at(qc, idx, q[on] / 1e3)
        net.asymmetric_load[f"p_{ph}_mw"] = pc
        net.asymmetric_load[f"q_{ph}_mvar"] = qc


def _describe_injections(feeder: Feeder, p: np.ndarray, q: np.ndarray, k: int = 5) -> str:
    s = np.hypot(p, q)
    top = np.argsort(-s)[:k]
    parts = [
        f"site {i} (bus {feeder.sites.bus.iat[i]} phase {feeder.sites.phase.iat[i]}): "
        f"{p[i]:.2f} kW {q[i]:.2f} kvar"
        for i in top
    ]
    return "; ".join(parts)


def run_power_flow(
    feeder: Feeder, p_kw: np.ndarray, q_kvar: np.ndarray, slot: int | None = None
) -> PowerFlowResult:
    """Run ``runpp_3ph`` for per-site demand ``p_kw``/``q_kvar`` (kW, kvar; demand positive)."""
    p = _check_site_array(p_kw, feeder.n_sites, "p_kw")
    q = _check_site_array(q_kvar, feeder.n_sites, "q_kvar")
    set_site_demand(feeder, p, q)
    net = feeder.net
    # warm start from the previous solution when there is one (about 2x faster); the feeders
    # are radial and connected by construction, so the connectivity check is skipped.
    warm = bool(net.get("converged", False)) and len(net.res_bus_3ph) == len(net.bus)
    try:
        pp.runpp_3ph(
            net,
            numba=HAS_NUMBA,
            max_iteration=30,
            init="results" if warm else "auto",
            check_connectivity=False,
        )
        ok = bool(net.converged)
    except pp.LoadflowNotConverged:
        ok = False
    if not ok:
        net["converged"] = False
    if not ok:
        raise PowerFlowError(
            f"runpp_3ph did not converge in slot {slot} on feeder {feeder.name!r}; "
            f"total {p.sum():.1f} kW; largest injections: {_describe_injections(feeder, p, q)}"
        )
    rb = net.res_bus_3ph
    rl = net.res_line_3ph
    rt = net.res_trafo_3ph
    re = net.res_ext_grid_3ph
    losses = (
        rl[["pl_a_mw", "pl_b_mw", "pl_c_mw"]].to_numpy().sum()
        + rt[["pl_a_mw", "pl_b_mw", "pl_c_mw"]].to_numpy().sum()
    )
    return PowerFlowResult(
        slot=slot,
        bus=net.bus.index.to_numpy(),
        line=net.line.index.to_numpy(),
        vm_pu=rb[["vm_a_pu", "vm_b_pu", "vm_c_pu"]].to_numpy().copy(),
        va_deg=rb[["va_a_degree", "va_b_degree", "va_c_degree"]].to_numpy().copy(),
        line_i_a=rl[["i_a_from_ka", "i_b_from_ka", "i_c_from_ka"]].to_numpy() * 1e3,
        line_loading_pct=rl[["loading_a_percent", "loading_b_percent", "loading_c_percent"]]
        .to_numpy()
        .copy(),
        trafo_loading_pct=rt[["loading_a_percent", "loading_b_percent", "loading_c_percent"]]
        .to_numpy()[0]
        .copy(),
        losses_kw=float(losses) * 1e3,
        p_sub_kw=re[["p_a_mw", "p_b_mw", "p_c_mw"]].to_numpy().sum(axis=0) * 1e3,
        q_sub_kvar=re[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].to_numpy().sum(axis=0) * 1e3,
    )
