"""Second power-flow engine: power-grid-model (asymmetric Newton-Raphson) on a feeder's data.

pandapower's own bridge ``runpp_pgm`` needs ``power-grid-model-io``, which is not installed
here, so this module converts the feeder's pandapower tables directly to power-grid-model
input (nodes, lines with sequence data, the Dyn transformer, the source with its short-circuit
power, one asym_load per site bus). :class:`PGMPowerFlow` builds the model once and updates
only the loads per call, and returns a :class:`grid_models.PowerFlowResult` like
``run_power_flow``; it is about 15 times faster than ``runpp_3ph`` on the IEEE EU LV feeder, so
the DSO uses it for its own AC checks, while the grid simulator (the ground truth) stays on
``runpp_3ph``. ``tests/test_grid_engines.py`` holds the two engines to each other.
"""

from __future__ import annotations

import numpy as np

from grid_models.errors import GridModelError, PowerFlowError
from grid_models.feeders import PHASES, Feeder
from grid_models.powerflow import PowerFlowResult, _check_site_array

SK_SCALE = 1.0


def _pgm():
    try:
        import power_grid_model
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise GridModelError("power-grid-model is not installed") from exc
    return power_grid_model


class PGMPowerFlow:
    """Asymmetric AC power flow of one feeder with power-grid-model.

    ``engine(p_kw, q_kvar, slot=...)`` takes per-site demand (kW, kvar; demand positive), as
    ``run_power_flow`` does, and returns a :class:`PowerFlowResult`. Non-convergence raises
    :class:`PowerFlowError`. Only Dyn transformers are supported (all shipped feeders).
    """

    def __init__(self, feeder: Feeder) -> None:
        pgm = _pgm()
        ct, init = pgm.ComponentType, pgm.initialize_array
        net = feeder.net
        self.feeder = feeder
        self.bus = net.bus.index.to_numpy()
        self.line = net.line.index.to_numpy()
        node = init(pgm.DatasetType.input, ct.node, len(self.bus))
        node["id"] = self.bus
        node["u_rated"] = net.bus.vn_kv.to_numpy() * 1e3
        next_id = int(self.bus.max()) + 1

        ln = net.line
        line = init(pgm.DatasetType.input, ct.line, len(ln))
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
        # ampacity as pandapower's line loading uses it (A)
        self._ampacity_a = (ln.max_i_ka * ln.df * ln.parallel).to_numpy()[:, None] * 1e3

        if len(net.trafo) != 1 or len(net.ext_grid) != 1:
            raise GridModelError("PGMPowerFlow supports one transformer and one external grid")
        tr = net.trafo.iloc[0]
        if str(tr.vector_group) != "Dyn":
            raise GridModelError(
                f"PGMPowerFlow supports Dyn transformers only, got {tr.vector_group}"
            )
        trafo = init(pgm.DatasetType.input, ct.transformer, 1)
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
        # pandapower's zero-sequence magnetizing impedance is mag0_percent of the zero-sequence
        # short-circuit impedance, with resistance/reactance mag0_rx; power-grid-model takes it
        # as a no-load current and loss
        z_m0 = tr.mag0_percent / 100 * tr.vk0_percent / 100  # pu of the transformer rating
        r_m0 = z_m0 * tr.mag0_rx / np.hypot(1.0, tr.mag0_rx)
        trafo["i0_zero_sequence"] = 1.0 / z_m0
        trafo["p0_zero_sequence"] = r_m0 / z_m0**2 * tr.sn_mva * 1e6
        trafo["winding_from"] = pgm.WindingType.delta
        trafo["winding_to"] = pgm.WindingType.wye_n
        trafo["clock"] = 1 if round(tr.shift_degree) == 30 else 5
        trafo["tap_side"] = 0
        trafo["tap_pos"] = trafo["tap_min"] = trafo["tap_max"] = trafo["tap_nom"] = 0
        trafo["tap_size"] = 0.0
        # rated phase currents (A) of each side: pandapower's per-phase transformer loading is
        # the larger of the two sides' current over its rating
        s_va = tr.sn_mva * 1e6
        self._trafo_rated_a = (
            s_va / (np.sqrt(3) * tr.vn_hv_kv * 1e3),
            s_va / (np.sqrt(3) * tr.vn_lv_kv * 1e3),
        )

        eg = net.ext_grid.iloc[0]
        source = init(pgm.DatasetType.input, ct.source, 1)
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
        self._load_ids = np.arange(len(load_bus)) + next_id
        load = init(pgm.DatasetType.input, ct.asym_load, len(load_bus))
        load["id"] = self._load_ids
        load["node"] = load_bus
        load["status"] = 1
        load["type"] = pgm.LoadGenType.const_power
        load["p_specified"] = 0.0
        load["q_specified"] = 0.0
        self._site_row = np.searchsorted(load_bus, sites.bus.to_numpy())
        self._site_col = sites.phase.map({ph: i for i, ph in enumerate(PHASES)}).to_numpy()

        self._model = pgm.PowerGridModel(
            {
                ct.node: node,
                ct.line: line,
                ct.transformer: trafo,
                ct.source: source,
                ct.asym_load: load,
            }
        )

    def __call__(
        self, p_kw: np.ndarray, q_kvar: np.ndarray, slot: int | None = None
    ) -> PowerFlowResult:
        pgm = _pgm()
        ct = pgm.ComponentType
        n = self.feeder.n_sites
        p = _check_site_array(p_kw, n, "p_kw")
        q = _check_site_array(q_kvar, n, "q_kvar")
        ps = np.zeros((len(self._load_ids), 3))
        qs = np.zeros((len(self._load_ids), 3))
        np.add.at(ps, (self._site_row, self._site_col), p * 1e3)
        np.add.at(qs, (self._site_row, self._site_col), q * 1e3)
        update = pgm.initialize_array(pgm.DatasetType.update, ct.asym_load, len(self._load_ids))
        update["id"] = self._load_ids
        update["p_specified"] = ps
        update["q_specified"] = qs
        self._model.update(update_data={ct.asym_load: update})
        try:
            out = self._model.calculate_power_flow(
                symmetric=False,
                error_tolerance=1e-10,
                max_iterations=50,
                calculation_method=pgm.CalculationMethod.newton_raphson,
            )
        except pgm.errors.PowerGridError as exc:
            raise PowerFlowError(
                f"power-grid-model did not converge in slot {slot} on feeder "
                f"{self.feeder.name!r}; total {p.sum():.1f} kW: {exc}"
            ) from None
        node, line = out[ct.node], out[ct.line]
        trafo, source = out[ct.transformer][0], out[ct.source][0]
        i_max = np.maximum(line["i_from"], line["i_to"])
        hv_a, lv_a = self._trafo_rated_a
        losses_w = (line["p_from"] + line["p_to"]).sum() + (trafo["p_from"] + trafo["p_to"]).sum()
        return PowerFlowResult(
            slot=slot,
            bus=self.bus,
            line=self.line,
            vm_pu=np.asarray(node["u_pu"]),
            va_deg=np.rad2deg(node["u_angle"]),
            line_i_a=np.asarray(line["i_from"]),
            line_loading_pct=i_max / self._ampacity_a * 100.0,
            trafo_loading_pct=np.maximum(trafo["i_from"] / hv_a, trafo["i_to"] / lv_a) * 100.0,
            losses_kw=float(losses_w) / 1e3,
            p_sub_kw=np.asarray(source["p"]) / 1e3,
            q_sub_kvar=np.asarray(source["q"]) / 1e3,
        )


def run_pgm(feeder: Feeder, p_kw: np.ndarray, q_kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One power-grid-model power flow; returns (vm_pu (n_bus,3), line_i_a (n_line,3)), rows
    following ``feeder.net.bus.index`` and ``feeder.net.line.index``."""
    result = PGMPowerFlow(feeder)(p_kw, q_kvar)
    return result.vm_pu, result.line_i_a
