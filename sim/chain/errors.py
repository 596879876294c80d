"""The chain's errors: a chain that cannot be used, and contract calls the contract refused.

`sim.chain.connection` re-exports all three; they derive from `sim.errors.BlockhemsError`.
"""

from __future__ import annotations

from typing import Any

from sim.errors import BlockhemsError


class ChainError(BlockhemsError, RuntimeError):
    """The chain could not be reached or used."""


class ContractRevert(BlockhemsError, RuntimeError):
    """A contract call was refused; `error` is the Solidity custom error's name."""

    def __init__(self, label: str, error: str, args: dict[str, Any]) -> None:
        self.label = label
        self.error = error
        self.args_by_name = args
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        super().__init__(f"{label} refused by the contract: {error}({shown})", key=label)


class BatchRevert(ContractRevert):
    """Transactions of a batch were refused by the contract; the others went through.

    Named after the first refusal (so `pytest.raises(ContractRevert, match=...)` works);
    `failures` holds every refusal with its index in the batch, `receipts` the receipt of every
    request (None where it was refused before sending).
    """

    def __init__(
        self, failures: list[tuple[int, ContractRevert]], receipts: list[dict | None]
    ) -> None:
        first = failures[0][1]
        super().__init__(first.label, first.error, first.args_by_name)
        self.failures = failures
        self.receipts = receipts
        if len(failures) > 1:
            self.args = (f"{self.args[0]} (and {len(failures) - 1} more refusals in the batch)",)
