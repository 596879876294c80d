"""What the revm chain records of a transaction it ran: the outcome of the execution, its logs,
its place in a block; and their JSON-RPC forms (receipts, transactions, logs, blooms, and
quantities and data as hex), as a node answers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import rlp
from eth_utils import keccak, to_canonical_address, to_checksum_address

from sim.chain.encoding import keccak256
from sim.chain.revm.transactions import RpcError, SignedTx


@dataclass(frozen=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """The result of one execution."""

    success: bool
    gas_used: int  # after refunds, as in a receipt
    gas_spent: int  # before refunds: the least gas limit that lets it run this way
    output: bytes  # return data, or the revert data of a failed execution
    logs: tuple[Log, ...] = ()
    contract_address: str | None = None
    halt: str | None = None  # why an exceptional halt (out of gas, invalid opcode) stopped it


@dataclass
class MinedTx:
    tx: SignedTx
    block_number: int
    index: int
    outcome: Outcome
    cumulative_gas: int
    first_log_index: int
    block_hash: bytes = b""


# ---------------------------------------------------------------------------- JSON-RPC forms


def quantity(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise RpcError(-32602, f"expected a hex quantity, got {value!r}")


def hex_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return bytes.fromhex(value[2:])
    raise RpcError(-32602, f"expected hex data, got {value!r}")


def hex_int(value: int) -> str:
    return hex(value)


def hex_data(value: bytes) -> str:
    return "0x" + value.hex()


def logs_bloom_bytes(logs: Iterable[Log]) -> bytes:
    """The 2048-bit bloom filter of `logs` (their addresses and topics), as eth_bloom computes
    it: three 11-bit indices from the keccak of each item (without its per-item objects)."""
    bloom = 0
    for log in logs:
        for item in (_address_bytes(log.address), *log.topics):
            h = keccak256(item)
            bloom |= (
                (1 << ((h[0] << 8 | h[1]) & 2047))
                | (1 << ((h[2] << 8 | h[3]) & 2047))
                | (1 << ((h[4] << 8 | h[5]) & 2047))
            )
    return bloom.to_bytes(256, "big")


@lru_cache(maxsize=4096)
def _address_bytes(address: str) -> bytes:
    return to_canonical_address(address)


def logs_bloom(logs: Iterable[Log]) -> str:
    return "0x" + logs_bloom_bytes(logs).hex()


def tx_json(tx: SignedTx, mined: MinedTx | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hash": hex_data(tx.hash),
        "type": hex_int(tx.type),
        "chainId": hex_int(tx.chain_id),
        "nonce": hex_int(tx.nonce),
        "from": tx.sender,
        "to": tx.to,
        "value": hex_int(tx.value),
        "gas": hex_int(tx.gas),
        "gasPrice": hex_int(tx.effective_gas_price if mined else tx.max_fee),
        "input": hex_data(tx.data),
        "v": hex_int(tx.v),
        "r": hex_int(tx.r),
        "s": hex_int(tx.s),
        "blockHash": hex_data(mined.block_hash) if mined else None,
        "blockNumber": hex_int(mined.block_number) if mined else None,
        "transactionIndex": hex_int(mined.index) if mined else None,
    }
    if tx.type >= 1:
        out["accessList"] = []
        out["yParity"] = hex_int(tx.v)
    if tx.type == 2:
        out["maxFeePerGas"] = hex_int(tx.max_fee)
        out["maxPriorityFeePerGas"] = hex_int(tx.priority_fee)
    return out


def log_json(mined: MinedTx, i: int, log: Log) -> dict[str, Any]:
    return {
        "address": log.address,
        "topics": [hex_data(t) for t in log.topics],
        "data": hex_data(log.data),
        "blockNumber": hex_int(mined.block_number),
        "blockHash": hex_data(mined.block_hash),
        "transactionHash": hex_data(mined.tx.hash),
        "transactionIndex": hex_int(mined.index),
        "logIndex": hex_int(mined.first_log_index + i),
        "removed": False,
    }


def receipt_json(mined: MinedTx) -> dict[str, Any]:
    """eth_getTransactionReceipt's answer for a mined transaction."""
    tx, outcome = mined.tx, mined.outcome
    return {
        "transactionHash": hex_data(tx.hash),
        "transactionIndex": hex_int(mined.index),
        "blockHash": hex_data(mined.block_hash),
        "blockNumber": hex_int(mined.block_number),
        "from": tx.sender,
        "to": tx.to,
        "type": hex_int(tx.type),
        "status": "0x1" if outcome.success else "0x0",
        "gasUsed": hex_int(outcome.gas_used),
        "cumulativeGasUsed": hex_int(mined.cumulative_gas),
        "effectiveGasPrice": hex_int(tx.effective_gas_price),
        # as geth: the address a creation would use, whether or not it succeeded
        "contractAddress": outcome.contract_address
        or (create_address(tx.sender, tx.nonce) if tx.to is None else None),
        "logs": [log_json(mined, i, log) for i, log in enumerate(outcome.logs)],
        "logsBloom": logs_bloom(outcome.logs),
    }


def create_address(sender: str, nonce: int) -> str:
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])
