"""Double-masked secure aggregation (docs/design.md, section 4 "Masking scheme").

Every home of a group holds an X25519 key (not its Ethereum key) and a 32-byte self-mask
secret, both drawn from the operating system's CSPRNG (`sim.chain.keys`). For every other
member j of the round's member set it derives

    k_ij = HKDF-SHA256(X25519(sk_i, pk_j), salt = chainId || contract, info = tag || group || epoch)

and per round r and field f (lower, upper) a mask m_ij(r, f) = HMAC-SHA256(k_ij, r || f) mod 2^128.
It also shares such a key with the DSO (k_iD, with the DSO key the round opened with) and
keeps a self-mask key k_i = HKDF-SHA256(b_i, salt, info(self tag)) that nobody else holds.
Home i (members ordered by their index in the group) submits

    y_i = x_i + sum_{j>i} m_ij - sum_{j<i} m_ji + m_iD + s_i        s_i(r, f) = PRF(k_i, r, f)

and, once the round's survivors S are fixed on chain, each survivor sends its recovery word

    c_i = -s_i - sum_{d not in S} sigma_id m_id                    (sigma_id = +1 if d > i else -1)

The sum over S of y_i + c_i is sum x_i + sum m_iD, which only the DSO can unmask. A home not in S
never sends c_i, so its self-mask is never revealed. Values are signed watts in two's
complement mod 2^128.
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
PAIR_TAG = b"blockhems/pair-mask/v1"
DSO_TAG = b"blockhems/dso-mask/v1"
SELF_TAG = b"blockhems/self-mask/v1"
SELF_KEY_BYTES = 32


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


def pack_words(lower: int, upper: int) -> int:
    """Two field words as the one uint256 the contract takes: (upper << 128) | lower."""
    return (upper % MODULUS) << 128 | (lower % MODULUS)


def unpack_words(packed: int) -> tuple[int, int]:
    """Inverse of pack_words: (lower, upper)."""
    return packed % MODULUS, (packed >> 128) % MODULUS


@dataclass(frozen=True)
class MaskContext:
    """What binds a key to one deployment and one group membership (the HKDF salt and info).

    Chain id and contract address are public and need not be unique: secrecy rests on the
    keys alone, which are random per home and run."""

    chain_id: int
    contract: str  # checksummed or lower-case hex address
    group: int
    epoch: int

    def salt(self) -> bytes:
        return self.chain_id.to_bytes(32, "big") + bytes.fromhex(self.contract.removeprefix("0x"))

    def info(self, tag: bytes) -> bytes:
        return tag + self.group.to_bytes(8, "big") + self.epoch.to_bytes(8, "big")


def public_key_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte X25519 public key of `key`."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _hkdf(secret: bytes, ctx: MaskContext, tag: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ctx.salt(), info=ctx.info(tag)).derive(
        secret
    )


def shared_key(own: X25519PrivateKey, peer_public: bytes, ctx: MaskContext, tag: bytes) -> bytes:
    """HKDF-SHA256 of the X25519 shared secret, bound to chain, contract, group and epoch."""
    return _hkdf(own.exchange(X25519PublicKey.from_public_bytes(peer_public)), ctx, tag)


def self_mask_key(secret: bytes, ctx: MaskContext) -> bytes:
    """A home's self-mask key for one membership (HKDF-SHA256 of its 32-byte secret)."""
    if len(secret) != SELF_KEY_BYTES:
        raise ValueError(f"a self-mask secret has {SELF_KEY_BYTES} bytes, got {len(secret)}")
    return _hkdf(secret, ctx, SELF_TAG)


def prf_mask(key: bytes, round_: int, field: str) -> int:
    """HMAC-SHA256(key, round || field) truncated to 128 bits."""
    digest = hmac.new(key, round_.to_bytes(8, "big") + _FIELD_CODE[field], hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "big")


class HomeMasker:
    """One home's view of the masking scheme for one group membership (one epoch) and one DSO
    key."""

    def __init__(
        self,
        key: X25519PrivateKey,
        self_secret: bytes,
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
            j: shared_key(key, pk, ctx, PAIR_TAG) for j, pk in members.items() if j != own_index
        }
        self._dso_key = shared_key(key, dso_public, ctx, DSO_TAG)
        self._self_key = self_mask_key(self_secret, ctx)

    def _signed_pair_mask(self, j: int, round_: int, field: str) -> int:
        mask = prf_mask(self._pair_keys[j], round_, field)
        return mask if j > self.own_index else -mask

    def self_mask(self, round_: int, field: str) -> int:
        """s_i(r, f): revealed (inside the recovery word) only once the home is a survivor."""
        return prf_mask(self._self_key, round_, field)

    def mask(self, round_: int, field: str, value_w: int) -> int:
        """The word to submit for one field: value + pairwise masks + DSO mask + self-mask."""
        total = encode_watts(value_w) + prf_mask(self._dso_key, round_, field)
        total += self.self_mask(round_, field)
        total += sum(self._signed_pair_mask(j, round_, field) for j in self._pair_keys)
        return total % MODULUS

    def recovery(self, round_: int, field: str, dropped: Iterable[int]) -> int:
        """The survivor's recovery word for one field: minus its self-mask and minus its
        pairwise masks with the dropped members."""
        dropped = set(dropped)
        unknown = dropped - set(self._pair_keys)
        if unknown:
            raise ValueError(
                f"dropped indices {sorted(unknown)} are not other members of the round"
            )
        cancel = sum(self._signed_pair_mask(d, round_, field) for d in dropped)
        return -(self.self_mask(round_, field) + cancel) % MODULUS


class DSOUnmasker:
    """The DSO's side: removes the home-DSO masks of the contributors from a group sum.

    Holds every X25519 key the DSO has used (by public key), so rounds opened before a key
    rotation stay removable."""

    def __init__(self, keys: Iterable[X25519PrivateKey]) -> None:
        self._private = {public_key_bytes(k): k for k in keys}
        self._keys: dict[tuple[MaskContext, bytes, bytes], bytes] = {}

    def add_key(self, key: X25519PrivateKey) -> None:
        self._private[public_key_bytes(key)] = key

    def _home_key(self, public: bytes, ctx: MaskContext, dso_public: bytes) -> bytes:
        # One X25519 + HKDF per home, membership epoch and DSO key, not per round.
        cached = self._keys.get((ctx, public, dso_public))
        if cached is None:
            private = self._private.get(dso_public)
            if private is None:
                raise PrivacyError(
                    f"the round was opened with DSO key {dso_public.hex()}, which this DSO "
                    "does not hold"
                )
            cached = shared_key(private, public, ctx, DSO_TAG)
            self._keys[(ctx, public, dso_public)] = cached
        return cached

    def dso_mask_sum(
        self,
        contributors: Mapping[int, bytes],
        ctx: MaskContext,
        round_: int,
        field: str,
        dso_public: bytes,
    ) -> int:
        total = sum(
            prf_mask(self._home_key(pk, ctx, dso_public), round_, field)
            for pk in contributors.values()
        )
        return total % MODULUS

    def unmask(
        self,
        masked_sum: int,
        contributors: Mapping[int, bytes],
        ctx: MaskContext,
        round_: int,
        field: str,
        dso_public: bytes,
    ) -> int:
        """The plaintext group sum in watts."""
        masks = self.dso_mask_sum(contributors, ctx, round_, field, dso_public)
        return decode_watts(masked_sum - masks)
