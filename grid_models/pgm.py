"""Second power-flow engine: power-grid-model (asymmetric Newton-Raphson) on a feeder's data.

pandapower's own bridge ``runpp_pgm`` needs ``power-grid-model-io``, which is not installed
here, so this module converts the feeder's pandapower tables directly to power-grid-model
input (nodes, lines with sequence data, the Dyn transformer, the source with its short-circuit
power, one asym_load per site bus) and returns phase voltages (pu) and line currents (A) in
the same layout as :class:`grid_models.PowerFlowResult`. Its only job is the independent
cross-check of ``runpp_3ph``.
"""

from __future__ import annotations

import numpy as np

from grid_models.errors import GridModelError
from grid_models.feeders import PHASES, Feeder

SK_SCALE = 1.0


def run_pgm(feeder: Feeder, p_kw: np.ndarray, q_kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric power flow with power-grid-model; returns (vm_pu (n_bus,3), line_i_a (n_line,3)).

    Rows follow ``feeder.net.bus.index`` and ``feeder.net.line.index``.
    """
    try:
        from power_grid_model import (
            CalculationMethod,
            ComponentType,
            DatasetType,
            LoadGenType,
            PowerGridModel,
            WindingType,
            initialize_array,
        )
    except ImportError as exc:  # pragma: no cover - test extra
        raise GridModelError("power-grid-model is not installed (test extra)") from exc
    net = feeder.net
    p = np.asarray(p_kw, dtype=float)
    q = np.asarray(q_kvar, dtype=float)
    if p.shape != (feeder.n_sites,) or q.shape != (feeder.n_sites,):
        raise GridModelError(f"p_kw and q_kvar must have shape ({feeder.n_sites},)")
    bus = net.bus.index.to_numpy()
    node = initialize_array(DatasetType.input, ComponentType.node, len(bus))
    node["id"] = bus
    node["u_rated"] = net.bus.vn_kv.to_numpy() * 1e3
    next_id = int(bus.max()) + 1

    ln = net.line
    line = initialize_array(DatasetType.input, ComponentType.line, len(ln))
    line["id"] = np.arange(len(ln)) + next_id
    next_id += len(ln)
    length = ln.length_km.to_numpy() / ln.parallel.to_numpy()
    line["from_node"] = ln.from_bus.to_numpy()
    line["to_node"] = ln.to_bus.to_numpy()
    line["from_status"] = ln.in_service.to_numpy().astype(int)
    line["to_status"] = ln.in_service.to_numpy().astype(int)
    line["r1"] = ln.r_ohm_per_km.to_numpy() * length
    line["x1"] = ln.x_ohm_per_km.to_numpy() * length
    line["c1"] = ln.c_nf_per_km.to_numpy() * 1e-9 * length
    line["tan1"] = 0.0
    line["r0"] = ln.r0_ohm_per_km.to_numpy() * length
    line["x0"] = ln.x0_ohm_per_km.to_numpy() * length
    line["c0"] = ln.c0_nf_per_km.to_numpy().astype(float) * 1e-9 * length
    line["tan0"] = 0.0
    line["i_n"] = ln.max_i_ka.to_numpy() * 1e3

    tr = net.trafo.iloc[0]
    if str(tr.vector_group) != "Dyn":
        raise GridModelError(f"run_pgm supports Dyn transformers only, got {tr.vector_group}")
    trafo = initialize_array(DatasetType.input, ComponentType.transformer, 1)
    trafo["id"] = next_id
    next_id += 1
    trafo["from_node"] = tr.hv_bus
    trafo["to_node"] = tr.lv_bus
    trafo["from_status"] = trafo["to_status"] = 1
    trafo["u1"] = tr.vn_hv_kv * 1e3
    trafo["u2"] = tr.vn_lv_kv * 1e3
    trafo["sn"] = tr.sn_mva * 1e6
    trafo["uk"] = tr.vk_percent / 100
    trafo["pk"] = tr.vkr_percent / 100 * tr.sn_mva * 1e6
    trafo["i0"] = tr.i0_percent / 100
    trafo["p0"] = tr.pfe_kw * 1e3
    trafo["winding_from"] = WindingType.delta
    trafo["winding_to"] = WindingType.wye_n
    trafo["clock"] = 1 if round(tr.shift_degree) == 30 else 5
    trafo["tap_side"] = 0
    trafo["tap_pos"] = trafo["tap_min"] = trafo["tap_max"] = trafo["tap_nom"] = 0
    trafo["tap_size"] = 0.0

    eg = net.ext_grid.iloc[0]
    source = initialize_array(DatasetType.input, ComponentType.source, 1)
    source["id"] = next_id
    next_id += 1
    source["node"] = eg.bus
    source["status"] = 1
    source["u_ref"] = eg.vm_pu
    source["u_ref_angle"] = np.deg2rad(eg.va_degree)
    source["sk"] = eg.s_sc_max_mva * 1e6 * SK_SCALE
    source["rx_ratio"] = eg.rx_max
    source["z01_ratio"] = 1.0 / eg.x0x_max

    sites = feeder.sites
    load_bus = np.sort(sites.bus.unique())
    load = initialize_array(DatasetType.input, ComponentType.asym_load, len(load_bus))
    load["id"] = np.arange(len(load_bus)) + next_id
    load["node"] = load_bus
    load["status"] = 1
    load["type"] = LoadGenType.const_power
    ps = np.zeros((len(load_bus), 3))
    qs = np.zeros((len(load_bus), 3))
    row = np.searchsorted(load_bus, sites.bus.to_numpy())
    col = sites.phase.map({ph: i for i, ph in enumerate(PHASES)}).to_numpy()
    np.add.at(ps, (row, col), p * 1e3)
    np.add.at(qs, (row, col), q * 1e3)
    load["p_specified"] = ps
    load["q_specified"] = qs

    model = PowerGridModel(
        {
            ComponentType.node: node,
            ComponentType.line: line,
            ComponentType.transformer: trafo,
            ComponentType.source: source,
            ComponentType.asym_load: load,
        }
    )
    out = model.calculate_power_flow(
        symmetric=False,
        error_tolerance=1e-10,
        max_iterations=50,
        calculation_method=CalculationMethod.newton_raphson,
    )
    vm = out[ComponentType.node]["u_pu"]
    i_a = out[ComponentType.line]["i_from"]
    return np.asarray(vm), np.asarray(i_a)
