"""Transactions arriving at the revm chain: decoding, signature checks and sender recovery, and
the checks a pool applies before it takes one.

Raw transactions are EIP-1559 (type 2), EIP-2930 (type 1) and EIP-155 legacy; the sender is
recovered from the signature, the chain id checked. A client in the same process hands over the
fields of its EIP-1559 transactions instead (`transaction_from_fields`): the same checks and the
same recovery, without the RLP round trip. Errors are `RpcError`s, which the provider turns into
JSON-RPC error answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import coincurve
import rlp
from eth_utils import keccak, to_canonical_address, to_checksum_address

from sim.chain.encoding import keccak256, raw_transaction, signing_hash, unsigned_fields
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
    return _checksum_bytes(bytes(item))


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
    sender = recover_sender(signing, parity, fields["r"], fields["s"])
    return SignedTx(hash=keccak256(raw), sender=sender, chain_id=tx_chain, **fields)


def recover_sender(signing: bytes, parity: int, r: int, s: int) -> str:
    """The address whose key made the signature (r, s, parity) of `signing`, checksummed.

    Refuses what a node refuses: r and s out of range, a high s (EIP-2), a parity not 0 or 1.
    Recovery is libsecp256k1's (coincurve), as eth_keys would use here, without its objects.
    """
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2) or parity not in (0, 1):
        raise invalid("invalid transaction signature (r, s out of range or high s, EIP-2)")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((parity,))
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, signing, hasher=None)
    except Exception as exc:  # coincurve raises ValueError or its own errors
        raise invalid(f"cannot recover the transaction's sender: {exc}") from None
    return _checksum_bytes(keccak256(public.format(compressed=False)[1:])[12:])


class Eip1559Fields(Protocol):
    """The fields of a signed EIP-1559 transaction (e.g. `sim.chain.signing.SignedCall`)."""

    chain_id: int
    nonce: int
    priority_fee: int
    max_fee: int
    gas: int
    to: str | None
    value: int
    data: bytes
    y_parity: int
    r: int
    s: int


def transaction_from_fields(fields: Eip1559Fields, chain_id: int) -> SignedTx:
    """The transaction `decode_raw_transaction` would give for the raw bytes of `fields`.

    For a client in the same process, which holds the fields already: nothing is decoded, but
    nothing the client computed is trusted either. The signing hash and the transaction hash
    are computed here from the fields, the same chain id and signature checks apply, and the
    sender is recovered from the signature (libsecp256k1, as eth_keys uses here).
    """
    if fields.chain_id != chain_id:
        raise invalid(f"invalid chain id {fields.chain_id}: this chain's id is {chain_id}")
    try:
        to_bytes = to_canonical_address(fields.to) if fields.to is not None else b""
    except ValueError:
        raise invalid(f"transaction 'to' is not an address: {fields.to!r}") from None
    to = _checksum_bytes(to_bytes) if to_bytes else None
    r, s, parity = fields.r, fields.s, fields.y_parity
    unsigned = unsigned_fields(
        fields.chain_id,
        fields.nonce,
        fields.priority_fee,
        fields.max_fee,
        fields.gas,
        to_bytes,
        fields.value,
        fields.data,
    )
    sender = recover_sender(signing_hash(unsigned), parity, r, s)
    return SignedTx(
        hash=keccak256(raw_transaction(unsigned, parity, r, s)),
        type=2,
        sender=sender,
        chain_id=fields.chain_id,
        nonce=fields.nonce,
        to=to,
        value=fields.value,
        data=bytes(fields.data),
        gas=fields.gas,
        max_fee=fields.max_fee,
        priority_fee=fields.priority_fee,
        v=parity,
        r=r,
        s=s,
    )


@lru_cache(maxsize=65536)
def checksum(address: str) -> str:
    """EIP-55 form of an address revm printed or a client sent (a keccak each time uncached;
    hot per slot)."""
    return to_checksum_address(address)


@lru_cache(maxsize=65536)
def _checksum_bytes(address: bytes) -> str:
    """EIP-55 form of a 20-byte address (a keccak each time uncached: hot per transaction)."""
    return to_checksum_address(address)


def intrinsic_gas(tx: SignedTx) -> int:
    """Gas charged before execution (Cancun): base, calldata and, for a creation, init code."""
    zeros = tx.data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(tx.data) - zeros)
    if tx.to is None:
        gas += 32_000 + 2 * ((len(tx.data) + 31) // 32)  # EIP-3860 init code words
    return gas


def check_arrival(
    tx: SignedTx, balance: int, nonce: int, queued: list[SignedTx], block_gas_limit: int
) -> None:
    """Refuse a transaction the pool cannot take, given its sender's `balance` and `nonce` and
    the sender's transactions `queued` in the pool: the nonce must be the next one, gas at least
    the intrinsic gas and at most the block's, init code within the limit, the tip at most the
    max fee, and the balance enough for it after the queued ones."""
    expected = nonce + len(queued)
    if tx.nonce < expected:
        raise invalid(f"nonce too low: {tx.sender} sent nonce {tx.nonce}, next is {expected}")
    if tx.nonce > expected:
        raise invalid(
            f"nonce too high: {tx.sender} sent nonce {tx.nonce}, next is {expected} "
            "(the revm backend keeps no queue of future nonces)"
        )
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
    # An account's balance only falls through its own transactions, so checking against the
    # pool's earlier ones here guarantees the transaction is still payable when mined.
    if balance < tx.max_cost + sum(t.max_cost for t in queued):
        raise invalid(
            f"insufficient funds for gas * price + value: {tx.sender} has {balance} wei, "
            f"needs {tx.max_cost} (plus {sum(t.max_cost for t in queued)} queued)"
        )
