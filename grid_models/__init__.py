"""Feeders, three-phase power flow and the linear sensitivity model (see each module)."""

from grid_models.errors import GridModelError, PowerFlowError
from grid_models.feeders import FEEDERS, PHASES, Feeder, build_feeder
from grid_models.linear import LinearModel, OperatingPoint
from grid_models.powerflow import PowerFlowResult, run_power_flow

__all__ = [
    "FEEDERS",
    "PHASES",
    "Feeder",
    "GridModelError",
    "LinearModel",
    "OperatingPoint",
    "PowerFlowError",
    "PowerFlowResult",
    "build_feeder",
    "run_power_flow",
]
