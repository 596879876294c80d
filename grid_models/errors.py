"""Exceptions raised by :mod:`grid_models` (one job: name what went wrong)."""

from __future__ import annotations

from sim.errors import BlockhemsError


class GridModelError(BlockhemsError, ValueError):
    """Bad feeder name, bad network data or bad power-flow input; ``key`` names the builder
    option or argument it refers to (e.g. ``min_group_size``), when there is one."""


class PowerFlowError(GridModelError):
    """The three-phase AC power flow did not converge (message names slot and injections)."""
