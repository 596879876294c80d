"""Set up a DSO and its homes on a fresh PrivateAggregation deployment.

Used by the co-simulation, the on-chain demo, the gas benchmark and the tests, so that all of
them register homes the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sim.chain.connection import Chain
from sim.chain.private import DSOClient, HomeClient, PrivateAggregation
from sim.constants import DEFAULT_MIN_GROUP_SIZE, DEFAULT_RECOVERY_S


def x25519_key(seed: str) -> X25519PrivateKey:
    """A deterministic X25519 key for reproducible runs (a real home would use a random one)."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


@dataclass
class Market:
    chain: Chain
    contract: PrivateAggregation
    dso: DSOClient
    homes: list[HomeClient]
    groups: list[int]  # group of each home, same order as homes

    def homes_of(self, group: int) -> list[HomeClient]:
        return [h for h, g in zip(self.homes, self.groups, strict=True) if g == group]


def setup_market(
    chain: Chain,
    groups: Sequence[int],
    seed: str = "blockhems",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    recovery_period_s: int = DEFAULT_RECOVERY_S,
) -> Market:
    """Deploy the contract and register one home per entry of `groups` (its group id)."""
    accounts = chain.new_accounts(len(groups) + 1, seed)
    dso_key = x25519_key(f"{seed}/dso")
    contract = PrivateAggregation.deploy(
        chain, accounts[0], dso_key, min_group_size, recovery_period_s
    )
    dso = DSOClient(contract, accounts[0], dso_key)
    homes = [
        HomeClient(contract, account, x25519_key(f"{seed}/home/{i}"))
        for i, account in enumerate(accounts[1:])
    ]
    for home, group in zip(homes, groups, strict=True):
        dso.register_home(home.address, int(group), home.public_key)
    return Market(chain, contract, dso, homes, [int(g) for g in groups])


def attach_homes(
    chain: Chain, address: str, n_homes: int, seed: str, indices: Sequence[int]
) -> dict[int, HomeClient]:
    """Clients of homes that `setup_market` (same `seed`, `n_homes`) already registered at
    `address`, for another process: home `i` of that call gets the same account and key."""
    accounts = chain.new_accounts(n_homes + 1, seed, fund=False)
    contract = PrivateAggregation(chain, address)
    return {
        i: HomeClient(contract, accounts[i + 1], x25519_key(f"{seed}/home/{i}")) for i in indices
    }
