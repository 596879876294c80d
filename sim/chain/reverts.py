"""Refusals decoded: the contract's custom error behind a revert, on every backend.

JSON-RPC nodes (hardhat, the revm provider) answer a revert with its bytes, which web3 raises as
ContractCustomError or ContractLogicError; eth-tester raises its own TransactionFailed, whose
bytes have to be dug out of the exception chain (`tester_revert_data`).
"""

from __future__ import annotations

import ast
import sys

from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError

from sim.chain.artifacts import decode_revert
from sim.chain.errors import ContractRevert

_WEB3_REVERTS = (ContractCustomError, ContractLogicError)


def reverts() -> tuple[type[Exception], ...]:
    """The exceptions a refused call raises: web3's for JSON-RPC nodes, and eth-tester's own
    for custom errors once eth-tester is loaded (it is imported only with the embedded backend,
    about a second of start-up otherwise). For `except reverts() as exc:`."""
    failed = _tester_failure()
    return _WEB3_REVERTS if failed is None else (*_WEB3_REVERTS, failed)


def _tester_failure() -> type[Exception] | None:
    module = sys.modules.get("eth_tester.exceptions")
    return None if module is None else module.TransactionFailed


def contract_revert(label: str, fn: ContractFunction, exc: Exception) -> ContractRevert:
    """The ContractRevert naming the custom error of `fn`'s contract that `exc` carries."""
    data = getattr(exc, "data", None)
    failed = _tester_failure()
    if failed is not None and isinstance(exc, failed):
        data = tester_revert_data(exc)
    name, args = decode_revert(fn.contract_abi, data, str(exc))
    return ContractRevert(label, name, args)


def rpc_error_text(answer: dict) -> str:
    """The message of a JSON-RPC error answer."""
    error = answer["error"]
    if isinstance(error, dict) and "message" in error:
        return f"{error['message']} (JSON-RPC error {error.get('code')})"
    return str(error)


def tester_revert_data(exc: BaseException) -> str | None:
    """The raw revert bytes behind an eth-tester failure.

    web3's eth-tester provider re-raises with a message that decodes the payload as a string
    where it can (which garbles custom errors with a string argument); the original exception,
    kept as the context, carries the raw bytes.
    """
    seen: BaseException | None = exc
    while seen is not None:
        arg = seen.args[0] if seen.args else None
        if isinstance(arg, Exception) and arg.args:
            arg = arg.args[0]
        if isinstance(arg, str) and arg.startswith(("b'", 'b"')):
            # Some eth-tester paths hand over the repr of the bytes instead of the bytes.
            try:
                arg = ast.literal_eval(arg)
            except (SyntaxError, ValueError):
                arg = None
        if isinstance(arg, bytes):
            return "0x" + arg.hex()
        seen = seen.__context__
    return None
