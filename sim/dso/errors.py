"""Exception of the DSO package."""

from __future__ import annotations


class DSOError(ValueError):
    """Bad input to the DSO (names the offending argument) or an unusable solver outcome."""
