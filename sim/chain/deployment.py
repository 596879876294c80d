"""Set up a DSO and its homes on a fresh PrivateAggregation deployment.

Used by the co-simulation, the on-chain demo, the gas benchmark and the tests, so that all of
them register homes the same way. Keys come from `sim.chain.keys.MarketKeys`: random from the
OS CSPRNG unless the caller passes deterministic debug keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sim.chain.connection import Chain
from sim.chain.keys import MarketKeys, PartyKeys, attest
from sim.chain.private import DSOClient, HomeClient, PrivateAggregation
from sim.constants import DEFAULT_MIN_GROUP_SIZE, DEFAULT_RECOVERY_S


@dataclass
class Market:
    chain: Chain
    contract: PrivateAggregation
    dso: DSOClient
    homes: list[HomeClient]
    groups: list[int]  # group of each home, same order as homes
    keys: MarketKeys

    def homes_of(self, group: int) -> list[HomeClient]:
        return [h for h, g in zip(self.homes, self.groups, strict=True) if g == group]

    @property
    def registrar(self) -> str:
        return self.keys.registrar.address


def setup_market(
    chain: Chain,
    groups: Sequence[int],
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    recovery_period_s: int = DEFAULT_RECOVERY_S,
    keys: MarketKeys | None = None,
) -> Market:
    """Deploy the contract and register one home per entry of `groups` (its group id), each
    with the registrar's attestation. `keys` default: fresh random keys for every party."""
    keys = keys or MarketKeys.random(len(groups))
    if len(keys.homes) != len(groups):
        raise ValueError(f"{len(keys.homes)} home keys for {len(groups)} homes")
    chain.fund([keys.dso.address] + [h.address for h in keys.homes])
    contract = PrivateAggregation.deploy(
        chain,
        keys.dso.account,
        keys.dso.x25519,
        keys.registrar.address,
        min_group_size,
        recovery_period_s,
    )
    dso = DSOClient(contract, keys.dso.account, keys.dso.x25519)
    homes = [HomeClient(contract, k, keys.registrar.address) for k in keys.homes]
    for home, group in zip(homes, groups, strict=True):
        attestation = attest(
            keys.registrar,
            chain.chain_id,
            contract.address,
            home.address,
            int(group),
            home.public_key,
        )
        dso.register_home(home.address, int(group), home.public_key, attestation)
    return Market(chain, contract, dso, homes, [int(g) for g in groups], keys)


def attach_homes(
    chain: Chain, address: str, keys: Mapping[int, PartyKeys], registrar: str
) -> dict[int, HomeClient]:
    """Clients of homes already registered at `address`, for another process (a shard), from
    the keys the main process handed it."""
    contract = PrivateAggregation(chain, address)
    return {i: HomeClient(contract, k, registrar) for i, k in keys.items()}
