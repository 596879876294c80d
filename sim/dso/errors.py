"""Exception of the DSO package."""

from __future__ import annotations

from sim.errors import BlockhemsError


class DSOError(BlockhemsError, ValueError):
    """Bad input to the DSO (names the offending argument) or an unusable solver outcome."""
