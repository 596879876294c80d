"""The ground truth's power-flow engine, chosen by name (scenario key ``feeder.engine``).

``"pgm"`` (the default): power-grid-model's asymmetric Newton-Raphson on the feeder's data,
the model built once and only the loads updated per call (:class:`grid_models.pgm.PGMPowerFlow`;
about 6-8 ms a flow of the IEEE EU LV feeder). ``"pandapower"``: ``runpp_3ph`` warm-started
from the previous slot (:func:`grid_models.powerflow.run_power_flow`; 100-200 ms, mostly
pandapower converting the net to its internal case on every call), kept as the cross-check.
The two agree within 1e-4 pu on voltages and 0.1 % of the rating on loadings on the shipped
feeders (``tests/test_grid_engines.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from grid_models.errors import GridModelError
from grid_models.feeders import Feeder
from grid_models.powerflow import PowerFlowResult

ENGINES = ("pgm", "pandapower")
DEFAULT_ENGINE = "pgm"

PowerFlow = Callable[..., PowerFlowResult]  # (p_kw, q_kvar, slot=None) -> PowerFlowResult


def power_flow_engine(feeder: Feeder, engine: str = DEFAULT_ENGINE) -> PowerFlow:
    """A callable ``flow(p_kw, q_kvar, slot=None)`` of per-site demand on ``feeder``."""
    if engine == "pgm":
        from grid_models.pgm import PGMPowerFlow

        return PGMPowerFlow(feeder)
    if engine == "pandapower":
        from grid_models.powerflow import run_power_flow

        return partial(run_power_flow, feeder)
    raise GridModelError(f"unknown power-flow engine {engine!r}; valid: {', '.join(ENGINES)}")
