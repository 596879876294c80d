"""Every party's keys, and the registrar's member attestations.

A home holds an Ethereum account (signs its transactions), an X25519 key (pairwise and DSO
masks) and a 32-byte self-mask secret; the DSO an account and an X25519 key; the registrar (the
party that attests members, e.g. the meter certifier) an account whose signatures the homes
check. All are drawn from the operating system's CSPRNG (`secrets`), per party and per run,
never from scenario data.

`MarketKeys.debug_deterministic` derives them from a seed string instead: only for debugging
(anyone who knows the seed, e.g. from a scenario file, can unmask every submission), refused
unless `enabled=True` is passed, and marked in the keys (`deterministic`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from sim.chain.masking import SELF_KEY_BYTES, PrivacyError, public_key_bytes

ATTESTATION_TAG = keccak(text="blockhems/member-attestation/v1")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def random_account() -> LocalAccount:
    """An Ethereum account with a private key from the OS CSPRNG."""
    while True:
        key = secrets.token_bytes(32)
        if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            return Account.from_key(key)


@dataclass(frozen=True)
class PartyKeys:
    """One party's secrets: its account, its X25519 key, its self-mask secret (homes)."""

    account: LocalAccount
    x25519: X25519PrivateKey
    self_secret: bytes

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.x25519)

    @classmethod
    def random(cls) -> PartyKeys:
        return cls(
            random_account(),
            X25519PrivateKey.from_private_bytes(secrets.token_bytes(32)),
            secrets.token_bytes(SELF_KEY_BYTES),
        )

    def export(self) -> dict[str, str]:
        """The secrets as hex strings, to hand a party's keys to another process (a shard's
        start parameters); never write them to results or logs."""
        return {
            "account": self.account.key.hex(),
            "x25519": self.x25519.private_bytes_raw().hex(),
            "self": self.self_secret.hex(),
        }

    @classmethod
    def from_export(cls, data: dict[str, str]) -> PartyKeys:
        return cls(
            Account.from_key(bytes.fromhex(data["account"].removeprefix("0x"))),
            X25519PrivateKey.from_private_bytes(bytes.fromhex(data["x25519"])),
            bytes.fromhex(data["self"]),
        )

    def __repr__(self) -> str:  # never print a secret by accident
        return f"PartyKeys(address={self.address})"


@dataclass(frozen=True)
class MarketKeys:
    """The keys of one run: the DSO, the registrar and every home (in registration order)."""

    dso: PartyKeys
    registrar: LocalAccount
    homes: list[PartyKeys]
    deterministic: bool = False

    @classmethod
    def random(cls, n_homes: int) -> MarketKeys:
        """Fresh keys for every party from the OS CSPRNG (the default)."""
        return cls(
            PartyKeys.random(), random_account(), [PartyKeys.random() for _ in range(n_homes)]
        )

    @classmethod
    def debug_deterministic(cls, seed: str, n_homes: int, *, enabled: bool = False) -> MarketKeys:
        """Keys derived from `seed` (the old `"<scenario name>/<homes.seed>"` derivation), for
        debugging only: whoever knows the seed unmasks everything. Refused unless `enabled`."""
        if not enabled:
            raise PrivacyError(
                "deterministic keys are for debugging only (whoever knows the seed can unmask "
                "every submission); enable them explicitly (scenario chain."
                "debug_deterministic_keys: true)"
            )

        def party(name: str, index: int) -> PartyKeys:
            return PartyKeys(
                Account.from_key(keccak(text=f"blockhems/{seed}/{index}")),
                X25519PrivateKey.from_private_bytes(
                    hashlib.sha256(f"{seed}/{name}".encode()).digest()
                ),
                hashlib.sha256(f"{seed}/self/{name}".encode()).digest(),
            )

        return cls(
            party("dso", 0),
            Account.from_key(keccak(text=f"blockhems/{seed}/registrar")),
            [party(f"home/{i}", i + 1) for i in range(n_homes)],
            deterministic=True,
        )


# ---------------------------------------------------------------- attestations


def attestation_digest(
    chain_id: int, contract: str, home: str, group: int, pub_key: bytes
) -> bytes:
    """keccak256(abi.encode(ATTESTATION_TAG, chainid, contract, home, group, pubKey)): what the
    registrar signs (as an EIP-191 message) for one member."""
    return keccak(
        abi_encode(
            ["bytes32", "uint256", "address", "address", "uint64", "bytes32"],
            [
                ATTESTATION_TAG,
                chain_id,
                to_checksum_address(contract),
                to_checksum_address(home),
                group,
                bytes(pub_key),
            ],
        )
    )


def attest(
    registrar: LocalAccount, chain_id: int, contract: str, home: str, group: int, pub_key: bytes
) -> tuple[bytes, bytes]:
    """The registrar's attestation of (home, group, pub_key) at `contract`: an EIP-2098
    compact signature (r, vs)."""
    digest = attestation_digest(chain_id, contract, home, group, pub_key)
    sig = registrar.sign_message(encode_defunct(primitive=digest))
    vs = sig.s | ((sig.v - 27) << 255)
    return sig.r.to_bytes(32, "big"), vs.to_bytes(32, "big")


def attestation_signer(
    chain_id: int, contract: str, home: str, group: int, pub_key: bytes, r: bytes, vs: bytes
) -> str | None:
    """The address that signed an attestation, None if it is no valid signature."""
    vs_int = int.from_bytes(bytes(vs), "big")
    v, s = 27 + (vs_int >> 255), vs_int & ((1 << 255) - 1)
    r_int = int.from_bytes(bytes(r), "big")
    if r_int == 0 or s == 0:
        return None
    digest = attestation_digest(chain_id, contract, home, group, pub_key)
    try:
        return Account.recover_message(encode_defunct(primitive=digest), vrs=(v, r_int, s))
    except Exception:  # noqa: BLE001 - any malformed signature means "not attested"
        return None
