"""An outsider who holds a run's results folder, its scenario file and the whole chain.

Before issue 16 every key and account was derived from "<scenario name>/<homes.seed>", so such
an outsider re-derived all of them and unmasked every submission. `derivation_attack` tries
that derivation (and nearby seeds and the shipped scenarios' names) against what the chain
shows, reading it over JSON-RPC only (`ChainReader`: blocks, inputs, logs): it counts derived
accounts and X25519 keys that are registered on chain, unmasks every submission whose sender's
key it re-derived and every group sum whose DSO key it re-derived, and checks the guesses
against the results folder's homes and groups tables. With keys from the OS CSPRNG nothing
matches; with `chain.debug_deterministic_keys: true` everything is unmasked.

Units: watts (the results' kW times 1000, rounded, as the homes submitted them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sim.chain.artifacts import load_artifact
from sim.chain.bids import decode_ladder
from sim.chain.keys import MarketKeys
from sim.chain.masking import (
    DSO_TAG,
    FIELDS,
    MODULUS,
    PAIR_TAG,
    MaskContext,
    decode_watts,
    prf_mask,
    public_key_bytes,
    self_mask_key,
    shared_key,
)
from sim.privacy.observers import ChainReader, _Decoder, _mapping_slot, _storage_slot
from sim.protocol import GROUP_BID_POINTS
from sim.scenario import SCENARIOS_DIR
from sim.table_io import read_table

SEED_SPAN = 50  # seeds tried on each side of the scenario's homes.seed


@dataclass
class ChainView:
    """What the private contract shows on chain (logs and transaction inputs)."""

    chain_id: int = 0
    members: dict[int, list[tuple[str, int, int, bytes]]] = field(default_factory=dict)
    # group -> [(home, index, joined epoch, pubKey)]
    round_epoch: dict[tuple[int, int], int] = field(default_factory=dict)  # (round, group)
    round_dso_key: dict[tuple[int, int], bytes] = field(default_factory=dict)
    dso_keys: list[bytes] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)  # every sender to the contract, lower case
    submissions: list[tuple[int, str, tuple[int, int]]] = field(default_factory=list)
    # (round, sender, (lower word, upper word))
    sums: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def group_of(self, home: str) -> tuple[int, int, bytes]:
        for group, members in self.members.items():
            for address, index, _, key in members:
                if address == home:
                    return group, index, key
        raise KeyError(home)


def read_chain(reader: ChainReader, contract: str) -> ChainView:
    """Decode the contract's logs, inputs and sums storage from JSON-RPC answers."""
    contract = contract.lower()
    decoder = _Decoder(load_artifact("PrivateAggregation")["abi"])
    view = ChainView()
    head = reader.block_number()
    dso_key_at_block: list[tuple[int, bytes]] = []
    opened: list[tuple[int, int, int]] = []  # (block, round, group)
    for log in reader.logs([contract], head):
        event = decoder.log(log)
        if event is None:
            continue
        name, args = event
        block = int(log["blockNumber"])
        if name == "UserClaimed":
            view.members.setdefault(int(args["group"]), []).append(
                (
                    str(args["home"]).lower(),
                    int(args["index"]),
                    int(args["epoch"]),
                    bytes(args["pubKey"]),
                )
            )
        elif name == "DsoKeySet":
            view.dso_keys.append(bytes(args["key"]))
            dso_key_at_block.append((block, bytes(args["key"])))
        elif name == "PriceSubmitted":
            key = (int(args["round"]), int(args["group"]))
            view.round_epoch[key] = int(args["epoch"])
            opened.append((block, *key))
    for block, round_, group in opened:
        current = [k for b, k in dso_key_at_block if b <= block]
        view.round_dso_key[(round_, group)] = current[-1]
    for number in range(head + 1):
        for tx in reader.block(number)["transactions"]:
            if (tx.get("to") or "").lower() != contract:
                continue
            sender = str(tx["from"]).lower()
            view.accounts.add(sender)
            view.chain_id = int(tx.get("chainId") or view.chain_id)
            call = decoder.call(bytes(tx.get("input", tx.get("data", b""))))
            if call is not None and call[0] == "submitRange":
                args = call[1]
                words = (int(args["maskedLower"]), int(args["maskedUpper"]))
                view.submissions.append((int(args["round"]), sender, words))
    base = _storage_slot("PrivateAggregation", "_sums")
    for round_, group in view.round_epoch:
        word = int.from_bytes(
            reader.storage_at(contract, _mapping_slot(group, _mapping_slot(round_, base))), "big"
        )
        view.sums[(round_, group)] = ((word - 1) % MODULUS, ((word >> 128) - 1) % MODULUS)
    return view


@dataclass(frozen=True)
class OutsiderResult:
    seeds_tried: int
    accounts_matched: int  # derived accounts that sent transactions to the contract
    keys_matched: int  # derived X25519 public keys registered on chain (homes and DSO)
    submissions: int
    submissions_unmasked: int  # re-derived masks give a home's bounds in the homes table
    sums: int
    sums_unmasked: int  # re-derived DSO masks give the group's sums in the groups table

    @property
    def unmasked_anything(self) -> bool:
        return bool(self.submissions_unmasked or self.sums_unmasked)


def _truth_w(results_dir: Path) -> tuple[dict[int, set[tuple[int, int]]], dict]:
    homes = read_table(results_dir, "homes")
    homes = homes[homes.submitted]
    per_round: dict[int, set[tuple[int, int]]] = {}
    for row in homes.itertuples():
        bounds = (round(row.lmin_kw * 1000), round(row.lmax_kw * 1000))
        per_round.setdefault(int(row.round), set()).add(bounds)
    groups = read_table(results_dir, "groups")
    sums = {
        (int(r.round), int(r.group)): (round(r.lmin_kw * 1000), round(r.lmax_kw * 1000))
        for r in groups[groups.revealed].itertuples()
    }
    return per_round, sums


def _bounds(words: tuple[int, int], mode: str) -> tuple[int, int]:
    """(Lmin, Lmax) in W from two unmasked words of the run's bid format."""
    if mode == "paper":
        return words
    points, _ = decode_ladder(words[0], words[1], GROUP_BID_POINTS)
    return points[-1], points[0]


def _close(guess: tuple[int, int], truth: tuple[int, int], tolerance_w: int) -> bool:
    return all(abs(g - t) <= tolerance_w for g, t in zip(guess, truth, strict=True))


def derivation_attack(
    results_dir: str | Path,
    reader: ChainReader,
    contract: str,
    seeds: Iterable[int] | None = None,
    names: Iterable[str] | None = None,
) -> OutsiderResult:
    """Try the old key derivation on a run; see the module docstring."""
    results_dir = Path(results_dir)
    scenario = yaml.safe_load((results_dir / "scenario.yaml").read_text())
    seed = int(scenario["homes"]["seed"])
    mode = (scenario.get("dso") or {}).get("mode", "paper")  # runs before the group mode: paper
    seeds = (
        list(seeds) if seeds is not None else list(range(seed - SEED_SPAN, seed + SEED_SPAN + 1))
    )
    if names is None:
        shipped = (yaml.safe_load(p.read_text())["name"] for p in SCENARIOS_DIR.glob("*.yaml"))
        names = [scenario["name"], *sorted(set(shipped) - {scenario["name"]})]
    names = list(names)
    view = read_chain(reader, contract)
    truth_homes, truth_sums = _truth_w(results_dir)
    n_homes = sum(len(m) for m in view.members.values())
    registered = {key for members in view.members.values() for *_, key in members}
    home_key: dict[bytes, tuple[X25519PrivateKey, bytes]] = {}  # pubKey -> (sk, self secret)
    dso_key: dict[bytes, X25519PrivateKey] = {}
    accounts = keys = tried = 0
    for name in names:
        for s in seeds:
            tried += 1
            derived = MarketKeys.debug_deterministic(f"{name}/{s}", n_homes, enabled=True)
            for party in [derived.dso, *derived.homes]:
                accounts += party.address.lower() in view.accounts
                public = public_key_bytes(party.x25519)
                if public in registered:
                    keys += 1
                    home_key[public] = (party.x25519, party.self_secret)
                if public in view.dso_keys:
                    keys += 1
                    dso_key[public] = party.x25519
    unmasked = 0
    for round_, sender, words in view.submissions:
        group, index, public = view.group_of(sender)
        if public not in home_key or (round_, group) not in view.round_epoch:
            continue
        secret, self_secret = home_key[public]
        epoch = view.round_epoch[(round_, group)]
        ctx = MaskContext(view.chain_id, contract, group, epoch)
        peers = [
            (i, k) for _, i, joined, k in view.members[group] if joined <= epoch and i != index
        ]
        guess = []
        for f, word in zip(FIELDS, words, strict=True):
            mask = prf_mask(
                shared_key(secret, view.round_dso_key[(round_, group)], ctx, DSO_TAG), round_, f
            )
            mask += prf_mask(self_mask_key(self_secret, ctx), round_, f)
            for j, peer in peers:
                pair = prf_mask(shared_key(secret, peer, ctx, PAIR_TAG), round_, f)
                mask += pair if j > index else -pair
            guess.append(decode_watts(word - mask))
        bounds = _bounds(tuple(guess), mode)
        unmasked += any(_close(bounds, t, 0) for t in truth_homes.get(round_, ()))
    sums_unmasked = 0
    for (round_, group), words in view.sums.items():
        key = dso_key.get(view.round_dso_key[(round_, group)])
        if key is None or (round_, group) not in truth_sums:
            continue
        epoch = view.round_epoch[(round_, group)]
        ctx = MaskContext(view.chain_id, contract, group, epoch)
        senders = {s for r, s, _ in view.submissions if r == round_}
        members = [k for a, _, joined, k in view.members[group] if joined <= epoch and a in senders]
        guess = tuple(
            decode_watts(
                word - sum(prf_mask(shared_key(key, k, ctx, DSO_TAG), round_, f) for k in members)
            )
            for f, word in zip(FIELDS, words, strict=True)
        )
        # the groups table sums are in kW with the DSO's rounding; 1 W per member
        sums_unmasked += _close(_bounds(guess, mode), truth_sums[(round_, group)], len(members))
    return OutsiderResult(
        seeds_tried=tried,
        accounts_matched=accounts,
        keys_matched=keys,
        submissions=len(view.submissions),
        submissions_unmasked=unmasked,
        sums=len(view.sums),
        sums_unmasked=sums_unmasked,
    )
