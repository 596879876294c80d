"""Exceptions raised by :mod:`grid_models` (one job: name what went wrong)."""

from __future__ import annotations


class GridModelError(ValueError):
    """Bad feeder name, bad network data or bad power-flow input."""


class PowerFlowError(GridModelError):
    """The three-phase AC power flow did not converge (message names slot and injections)."""
