"""Pairwise-mask secure aggregation (docs/design.md, section 4 "Masking scheme").

Every home of a group holds an X25519 key (not its Ethereum key). For every other member j of
the round's member set it derives

    k_ij = HKDF-SHA256(X25519(sk_i, pk_j), salt = chainId || contract, info = tag || group || epoch)

and per round r and field f (lower, upper) a mask m_ij(r, f) = HMAC-SHA256(k_ij, r || f) mod 2^128.
It also shares such a key with the DSO. Home i (members ordered by their index in the group)
submits

    y_i = x_i + sum_{j>i} m_ij - sum_{j<i} m_ji + m_iD   (mod 2^128).

The pairwise masks cancel in the group sum; what remains is sum x_i + sum m_iD, which only the
DSO can unmask. Values are signed watts in two's complement mod 2^128.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sim.errors import BlockhemsError

MODULUS = 1 << 128
FIELDS = ("lower", "upper")
_FIELD_CODE = {"lower": b"\x00", "upper": b"\x01"}
_PAIR_TAG = b"blockhems/pair-mask/v1"
_DSO_TAG = b"blockhems/dso-mask/v1"


class PrivacyError(BlockhemsError, RuntimeError):
    """A step that would expose an individual home's value was refused."""


def encode_watts(value_w: int) -> int:
    """Signed watts as an element of Z_{2^128} (two's complement)."""
    if not isinstance(value_w, int):
        raise TypeError(f"value must be an integer number of watts, got {type(value_w).__name__}")
    if not -(MODULUS >> 1) <= value_w < (MODULUS >> 1):
        raise ValueError(f"value {value_w} W does not fit a signed 128-bit word")
    return value_w % MODULUS


def decode_watts(word: int) -> int:
    """Inverse of encode_watts."""
    word %= MODULUS
    return word - MODULUS if word >= (MODULUS >> 1) else word


@dataclass(frozen=True)
class MaskContext:
    """What binds a key to one deployment and one group membership (the HKDF salt and info)."""

    chain_id: int
    contract: str  # checksummed or lower-case hex address
    group: int
    epoch: int

    def salt(self) -> bytes:
        return self.chain_id.to_bytes(32, "big") + bytes.fromhex(self.contract.removeprefix("0x"))

    def info(self, tag: bytes) -> bytes:
        return tag + self.group.to_bytes(8, "big") + self.epoch.to_bytes(8, "big")


def public_key_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def shared_key(own: X25519PrivateKey, peer_public: bytes, ctx: MaskContext, tag: bytes) -> bytes:
    """HKDF-SHA256 of the X25519 shared secret, bound to chain, contract, group and epoch."""
    secret = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ctx.salt(), info=ctx.info(tag)).derive(
        secret
    )


def prf_mask(key: bytes, round_: int, field: str) -> int:
    """HMAC-SHA256(key, round || field) truncated to 128 bits."""
    digest = hmac.new(key, round_.to_bytes(8, "big") + _FIELD_CODE[field], hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "big")


class HomeMasker:
    """One home's view of the masking scheme for one group membership (one epoch)."""

    def __init__(
        self,
        key: X25519PrivateKey,
        own_index: int,
        members: Mapping[int, bytes],
        dso_public: bytes,
        ctx: MaskContext,
    ) -> None:
        """`members` maps member index -> X25519 public key for the round's member set."""
        if own_index not in members:
            raise ValueError(f"home index {own_index} is not in the member set {sorted(members)}")
        if members[own_index] != public_key_bytes(key):
            raise ValueError(f"the key registered for index {own_index} is not this home's key")
        self.own_index = own_index
        self._pair_keys = {
            j: shared_key(key, pk, ctx, _PAIR_TAG) for j, pk in members.items() if j != own_index
        }
        self._dso_key = shared_key(key, dso_public, ctx, _DSO_TAG)

    def _signed_pair_mask(self, j: int, round_: int, field: str) -> int:
        mask = prf_mask(self._pair_keys[j], round_, field)
        return mask if j > self.own_index else -mask

    def mask(self, round_: int, field: str, value_w: int) -> int:
        """The word to submit for one field: value + pairwise masks + the DSO mask."""
        total = encode_watts(value_w) + prf_mask(self._dso_key, round_, field)
        total += sum(self._signed_pair_mask(j, round_, field) for j in self._pair_keys)
        return total % MODULUS

    def correction(self, round_: int, field: str, dropped: Iterable[int]) -> int:
        """The word that cancels this home's pairwise masks with the dropped members."""
        dropped = set(dropped)
        unknown = dropped - set(self._pair_keys)
        if unknown:
            raise ValueError(f"dropped indices {sorted(unknown)} are not members of the round")
        return -sum(self._signed_pair_mask(d, round_, field) for d in dropped) % MODULUS


class DSOUnmasker:
    """The DSO's side: removes the home-DSO masks of the contributors from a group sum."""

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key
        self._keys: dict[tuple[MaskContext, bytes], bytes] = {}

    def _home_key(self, public: bytes, ctx: MaskContext) -> bytes:
        # One X25519 + HKDF per home and membership epoch, not per round.
        cached = self._keys.get((ctx, public))
        if cached is None:
            cached = self._keys[(ctx, public)] = shared_key(self._key, public, ctx, _DSO_TAG)
        return cached

    def dso_mask_sum(
        self, contributors: Mapping[int, bytes], ctx: MaskContext, round_: int, field: str
    ) -> int:
        total = sum(
            prf_mask(self._home_key(pk, ctx), round_, field) for pk in contributors.values()
        )
        return total % MODULUS

    def unmask(
        self,
        masked_sum: int,
        contributors: Mapping[int, bytes],
        ctx: MaskContext,
        round_: int,
        field: str,
    ) -> int:
        """The plaintext group sum in watts."""
        return decode_watts(masked_sum - self.dso_mask_sum(contributors, ctx, round_, field))
