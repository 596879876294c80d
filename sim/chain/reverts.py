"""Refusals decoded: the contract's custom error behind a revert, on every backend.

JSON-RPC nodes (hardhat, the revm provider) answer a revert with its bytes, which web3 raises as
ContractCustomError or ContractLogicError; eth-tester raises its own TransactionFailed, whose
bytes have to be dug out of the exception chain (`tester_revert_data`).
"""

from __future__ import annotations

import ast

from eth_tester.exceptions import TransactionFailed
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError

from sim.chain.artifacts import decode_revert
from sim.chain.errors import ContractRevert

# eth-tester raises its own exception for custom errors; JSON-RPC nodes give web3's.
REVERTS = (ContractCustomError, ContractLogicError, TransactionFailed)


def contract_revert(label: str, fn: ContractFunction, exc: Exception) -> ContractRevert:
    """The ContractRevert naming the custom error of `fn`'s contract that `exc` carries."""
    data = getattr(exc, "data", None)
    if isinstance(exc, TransactionFailed):
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
