"""EIP-1559 transactions as bytes: RLP of the fields, the signing hash, the raw transaction.

Shared by the signer (sim/chain/signing.py) and the revm engine's in-process path
(sim/chain/revm/transactions.py), which rebuilds the bytes from the fields it is handed instead
of trusting the client's. Written out because the `rlp` package's general encoder costs about
50 microseconds a transaction; these produce the same bytes (tests/test_chain_signing.py).
"""

from __future__ import annotations

TYPE_EIP1559 = b"\x02"
_EMPTY_LIST = b"\xc0"  # the access list: always empty here


try:  # pysha3 (safe-pysha3): a C keccak at about 1 us a call, an eighth of pycryptodome's
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - pycryptodome (a web3 dependency): the same digests
    from Crypto.Hash import keccak as _keccak

    def keccak256(data: bytes) -> bytes:
        return _keccak.new(digest_bits=256, data=data).digest()


def _length(length: int, short: int) -> bytes:
    if length < 56:
        return bytes((short + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((short + 55 + len(size),)) + size


def rlp_bytes(value: bytes) -> bytes:
    if len(value) == 1 and value[0] < 0x80:
        return value
    return _length(len(value), 0x80) + value


def rlp_int(value: int) -> bytes:
    return rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rlp_list(payload: bytes) -> bytes:
    """An RLP list of the concatenated, already encoded items in `payload`."""
    return _length(len(payload), 0xC0) + payload


def unsigned_fields(
    chain_id: int,
    nonce: int,
    priority_fee: int,
    max_fee: int,
    gas: int,
    to: bytes,
    value: int,
    data: bytes,
) -> bytes:
    """The encoded items of an EIP-1559 transaction before its signature (empty access list);
    `to` is the 20-byte address, or b"" for a creation."""
    return (
        rlp_int(chain_id)
        + rlp_int(nonce)
        + rlp_int(priority_fee)
        + rlp_int(max_fee)
        + rlp_int(gas)
        + rlp_bytes(to)
        + rlp_int(value)
        + rlp_bytes(data)
        + _EMPTY_LIST
    )


def signing_hash(unsigned: bytes) -> bytes:
    """What the sender signs: keccak(0x02 || rlp(unsigned fields))."""
    return keccak256(TYPE_EIP1559 + rlp_list(unsigned))


def raw_transaction(unsigned: bytes, y_parity: int, r: int, s: int) -> bytes:
    """The signed transaction as sent to a node; its hash is keccak256 of it."""
    return TYPE_EIP1559 + rlp_list(unsigned + rlp_int(y_parity) + rlp_int(r) + rlp_int(s))
