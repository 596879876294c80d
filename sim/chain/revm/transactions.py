"""Transactions of the revm chain: raw transaction decoding and signature checks, the records
of an execution (outcome, logs, mined position) and their JSON-RPC forms (transactions,
receipts, logs, quantities and data as hex).

Raw transactions are EIP-1559 (type 2), EIP-2930 (type 1) and EIP-155 legacy; the sender is
recovered from the signature, the chain id checked. Errors are `RpcError`s, which the provider
turns into JSON-RPC error answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import rlp
from eth_bloom import BloomFilter
from eth_keys import keys
from eth_utils import keccak, to_canonical_address, to_checksum_address

from sim.errors import BlockhemsError

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_INITCODE = 2 * 24_576  # EIP-3860


class RpcError(BlockhemsError):
    """A JSON-RPC error answer: code, message and optional data (revert bytes as hex)."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def invalid(message: str) -> RpcError:
    return RpcError(-32000, message)


# ---------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class SignedTx:
    """A decoded, signature-checked transaction."""

    hash: bytes
    type: int  # 0 legacy (EIP-155), 1 EIP-2930, 2 EIP-1559
    sender: str
    chain_id: int
    nonce: int
    to: str | None  # None creates a contract
    value: int
    data: bytes
    gas: int
    max_fee: int  # gasPrice for types 0 and 1
    priority_fee: int  # equals gasPrice for types 0 and 1
    v: int
    r: int
    s: int

    @property
    def effective_gas_price(self) -> int:
        # base fee 0: a type-2 transaction pays its tip, capped by its max fee
        return min(self.max_fee, self.priority_fee)

    @property
    def max_cost(self) -> int:
        return self.gas * self.max_fee + self.value


def _int(item: bytes) -> int:
    return int.from_bytes(item, "big")


def _to(item: bytes) -> str | None:
    if not item:
        return None
    if len(item) != 20:
        raise invalid(f"transaction 'to' has {len(item)} bytes, not 20")
    return to_checksum_address(item)


def decode_raw_transaction(raw: bytes, chain_id: int) -> SignedTx:
    """Decode a signed raw transaction, check its chain id and signature, recover the sender."""
    if not raw:
        raise invalid("empty raw transaction")
    try:
        if raw[0] == 2:
            f = rlp.decode(raw[1:])
            if len(f) != 12:
                raise invalid(f"an EIP-1559 transaction has 12 fields, this one {len(f)}")
            access_list, parity = f[8], _int(f[9])
            tx_chain, signing = _int(f[0]), keccak(b"\x02" + rlp.encode(f[:9]))
            fields = dict(
                type=2,
                nonce=_int(f[1]),
                priority_fee=_int(f[2]),
                max_fee=_int(f[3]),
                gas=_int(f[4]),
                to=_to(f[5]),
                value=_int(f[6]),
                data=bytes(f[7]),
                v=parity,
                r=_int(f[10]),
                s=_int(f[11]),
            )
        elif raw[0] == 1:
            f = rlp.decode(raw[1:])
            if len(f) != 11:
                raise invalid(f"an EIP-2930 transaction has 11 fields, this one {len(f)}")
            access_list, parity = f[7], _int(f[8])
            tx_chain, signing = _int(f[0]), keccak(b"\x01" + rlp.encode(f[:8]))
            price = _int(f[2])
            fields = dict(
                type=1,
                nonce=_int(f[1]),
                priority_fee=price,
                max_fee=price,
                gas=_int(f[3]),
                to=_to(f[4]),
                value=_int(f[5]),
                data=bytes(f[6]),
                v=parity,
                r=_int(f[9]),
                s=_int(f[10]),
            )
        elif raw[0] >= 0xC0:
            f = rlp.decode(raw)
            if len(f) != 9:
                raise invalid(f"a legacy transaction has 9 fields, this one {len(f)}")
            v = _int(f[6])
            if v in (27, 28):
                raise invalid("unprotected legacy transaction (no EIP-155 chain id) refused")
            tx_chain, parity, access_list = (v - 35) // 2, (v - 35) % 2, []
            signing = keccak(rlp.encode(f[:6] + [tx_chain, 0, 0]))
            price = _int(f[1])
            fields = dict(
                type=0,
                nonce=_int(f[0]),
                priority_fee=price,
                max_fee=price,
                gas=_int(f[2]),
                to=_to(f[3]),
                value=_int(f[4]),
                data=bytes(f[5]),
                v=v,
                r=_int(f[7]),
                s=_int(f[8]),
            )
        else:
            raise invalid(f"transaction type {raw[0]} is not supported by the revm backend")
    except rlp.DecodingError as exc:
        raise invalid(f"raw transaction is not valid RLP: {exc}") from None
    if tx_chain != chain_id:
        raise invalid(f"invalid chain id {tx_chain}: this chain's id is {chain_id}")
    if access_list:
        # pyrevm would preload the entries unjournaled; they would stay warm for every later tx.
        raise invalid("transactions with an access list are not supported by the revm backend")
    r, s = fields["r"], fields["s"]
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2) or parity not in (0, 1):
        raise invalid("invalid transaction signature (r, s out of range or high s, EIP-2)")
    try:
        public = keys.Signature(vrs=(parity, r, s)).recover_public_key_from_msg_hash(signing)
    except Exception as exc:  # eth_keys raises several types for unrecoverable signatures
        raise invalid(f"cannot recover the transaction's sender: {exc}") from None
    return SignedTx(
        hash=keccak(raw), sender=public.to_checksum_address(), chain_id=tx_chain, **fields
    )


def intrinsic_gas(tx: SignedTx) -> int:
    """Gas charged before execution (Cancun): base, calldata and, for a creation, init code."""
    zeros = tx.data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(tx.data) - zeros)
    if tx.to is None:
        gas += 32_000 + 2 * ((len(tx.data) + 31) // 32)  # EIP-3860 init code words
    return gas


def check_limits(tx: SignedTx, block_gas_limit: int) -> None:
    """Refuse what no state makes valid: gas under the intrinsic gas or over the block's, init
    code over the limit, a tip above the max fee (the pool checks nonce and funds)."""
    if tx.gas < intrinsic_gas(tx):
        raise invalid(f"intrinsic gas too low: gas limit {tx.gas}, needs {intrinsic_gas(tx)}")
    if tx.to is None and len(tx.data) > MAX_INITCODE:
        raise invalid(f"max initcode size exceeded: {len(tx.data)} bytes, limit {MAX_INITCODE}")
    if tx.gas > block_gas_limit:
        raise invalid(f"gas limit {tx.gas} exceeds the block gas limit {block_gas_limit}")
    if tx.priority_fee > tx.max_fee:
        raise invalid(
            f"max priority fee per gas {tx.priority_fee} higher than max fee {tx.max_fee}"
        )


# ---------------------------------------------------------------------------- execution records


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


def logs_bloom(logs: Iterator[Log] | tuple[Log, ...]) -> str:
    bloom = BloomFilter()
    for log in logs:
        bloom.add(to_canonical_address(log.address))
        for topic in log.topics:
            bloom.add(topic)
    return "0x" + int(bloom).to_bytes(256, "big").hex()


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
