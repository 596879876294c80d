"""The one root of blockhems' exceptions.

Every error that a user's input or a failed step of a run can cause derives from
`BlockhemsError`; the command line catches it once and prints its message on one line
(`sim.cli.main`). A subclass per area names what it refers to in `key`: the dotted scenario key,
the parameter, the argument or the contract call (None where nothing more specific applies).
Subclasses keep the builtin base they had (ValueError, RuntimeError) so that callers catching
those still do.

This module imports nothing, so every layer (grid_models included) can derive from it.
"""

from __future__ import annotations


class BlockhemsError(Exception):
    """An error of blockhems; the message is complete on its own (one line for the user).

    ``key`` names the scenario key, parameter, argument or call the error refers to.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
