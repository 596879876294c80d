"""What each adversary sees, turned into per-home time series for the attacker.

Two observers:

* The chain observer: anyone who runs (or reads from) a node of the chain, including the DSO's
  validators. It gets only JSON-RPC answers through :class:`ChainReader`: every block, every
  transaction's input and sender, the gas it used, every log and contract storage. It
  knows the contracts' public ABIs and storage layouts and the market's public timetable, and
  has linked the addresses it targets to houses (the burglar's hardest step, granted here).
* The DSO: it additionally learns each group's unmasked sums (`sim.chain.private.DSOClient`)
  and knows which group every home belongs to (it registered them).

Both produce an :class:`ObservedSeries`: values per target home, slot and channel, from
:func:`chain_home_series` (a home's own submissions), :func:`chain_group_series` (its group's
sums as the chain shows them) and :func:`dso_series` (the DSO's unmasked sums).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, keccak
from web3 import Web3
from web3.exceptions import MethodUnavailable

from sim.chain.artifacts import load_artifact
from sim.chain.masking import decode_watts
from sim.errors import BlockhemsError

ContractKind = Literal["baseline", "private"]
ARTIFACT_OF: dict[str, str] = {"baseline": "SeedBaseline", "private": "PrivateAggregation"}
WORD_MASK = (1 << 128) - 1


class ObserverError(BlockhemsError, ValueError):
    """The chain or the inputs do not allow building an observer's view."""


@dataclass(frozen=True)
class Timetable:
    """The market's public timetable: round r's protocol happens during
    [t0_s + r * slot_s, t0_s + (r + 1) * slot_s) in block time."""

    t0_s: int
    slot_s: int
    n_slots: int

    def slot_of(self, timestamp_s: int) -> int | None:
        """The slot a block timestamp falls in, None outside the timetable."""
        slot = (int(timestamp_s) - self.t0_s) // self.slot_s
        return slot if 0 <= slot < self.n_slots else None


class ChainReader:
    """Read-only chain access through standard JSON-RPC calls, nothing else.

    The attacker's only window on the system: a test wraps it and checks that the chain
    observer calls nothing but these methods.
    """

    METHODS = (
        "block_number",
        "block",
        "receipt",
        "storage_at",
        "logs",
        "new_log_filter",
        "filter_logs",
    )

    def __init__(self, w3: Web3) -> None:
        self._eth = w3.eth

    def block_number(self) -> int:
        return int(self._eth.block_number)

    def block(self, number: int) -> Mapping[str, Any]:
        """The block with its full transactions (eth_getBlockByNumber)."""
        return self._eth.get_block(number, full_transactions=True)

    def receipt(self, tx_hash: bytes) -> Mapping[str, Any]:
        return self._eth.get_transaction_receipt(tx_hash)

    def storage_at(self, address: str, slot: int) -> bytes:
        return bytes(self._eth.get_storage_at(Web3.to_checksum_address(address), slot))

    def logs(self, addresses: Sequence[str], to_block: int) -> list[Mapping[str, Any]]:
        """Every log of `addresses` from block 0 to `to_block` (eth_getLogs)."""
        criteria = {
            "fromBlock": 0,
            "toBlock": to_block,
            "address": [Web3.to_checksum_address(a) for a in addresses],
        }
        return list(self._eth.get_logs(criteria))

    def new_log_filter(self) -> Any | None:
        """A filter over every log from block 0 on (eth_newFilter); None where the node has
        no filters."""
        try:
            return self._eth.filter({"fromBlock": 0}).filter_id
        except MethodUnavailable:
            return None

    def filter_logs(self, filter_id: Any) -> list[Mapping[str, Any]]:
        return list(self._eth.get_filter_logs(filter_id))


# ---------------------------------------------------------------- ABI decoding (public ABIs)


def _types(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [i["type"] for i in inputs]


class _Decoder:
    """Decode calls and logs of one contract from its public ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.functions = {
            function_abi_to_4byte_selector(f): f for f in abi if f.get("type") == "function"
        }
        self.events = {event_abi_to_log_topic(e): e for e in abi if e.get("type") == "event"}

    def call(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        fn = self.functions.get(bytes(data[:4]))
        if fn is None:
            return None
        values = abi_decode(_types(fn["inputs"]), bytes(data[4:]))
        return fn["name"], {i["name"]: v for i, v in zip(fn["inputs"], values, strict=True)}

    def log(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        topics = [bytes(t) for t in log["topics"]]
        event = self.events.get(topics[0]) if topics else None
        if event is None:
            return None
        indexed = [i for i in event["inputs"] if i["indexed"]]
        plain = [i for i in event["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for i, topic in zip(indexed, topics[1:], strict=True):
            args[i["name"]] = abi_decode([i["type"]], topic)[0]
        for i, v in zip(plain, abi_decode(_types(plain), bytes(log["data"])), strict=True):
            args[i["name"]] = v
        return event["name"], args


# ---------------------------------------------------------------- what the chain shows


@dataclass(frozen=True)
class Submission:
    """One submitRange as seen on chain."""

    sender: str
    contract: str
    slot: int
    numbers: tuple[int, int]  # the two numbers in the call, as an attacker reads them
    gas_used: int


@dataclass
class ChainCapture:
    """Everything the chain observer pulled from the chain about the watched contracts."""

    timetable: Timetable
    kinds: dict[str, ContractKind]  # contract address -> kind
    submissions: list[Submission] = field(default_factory=list)
    # (contract, group) of each home, from the private contract's UserClaimed logs
    private_group_of: dict[str, tuple[str, int]] = field(default_factory=dict)
    # (contract, group, slot) -> the group's two sums as the chain shows them (group 0 for a
    # seed instance, which aggregates one bus)
    group_sums: dict[tuple[str, int, int], tuple[int, int]] = field(default_factory=dict)
    transactions: int = 0
    logs: int = 0
    storage_reads: int = 0


def _signed(word: int) -> int:
    """A 128-bit word read as the signed watts it would be if it were plaintext."""
    return decode_watts(int(word) & WORD_MASK)


def _parse_range(text: str) -> tuple[int, int]:
    """The seed contract's plaintext "lower,upper" (W)."""
    try:
        lower, upper = text.split(",")
        return int(lower), int(upper)
    except ValueError:
        raise ObserverError(f"seed contract submission {text!r} is not 'lower,upper'") from None


def _mapping_slot(key: int, base_slot: int) -> int:
    """Storage slot of mapping[key] for a mapping at `base_slot` (Solidity layout)."""
    return int.from_bytes(keccak(abi_encode(["uint256", "uint256"], [key, base_slot])), "big")


def _storage_slot(contract_name: str, label: str) -> int:
    """Base slot of a state variable, from the committed artifact's storage layout."""
    for var in load_artifact(contract_name)["storageLayout"]["storage"]:
        if var["label"] == label:
            return int(var["slot"])
    raise ObserverError(f"{contract_name} has no state variable {label!r}")


class ChainObserver:
    """Anyone following the chain. Start it before the rounds; `capture` then reads every
    block, transaction input, the gas each transaction used, the logs and the watched
    contracts' storage.

    Logs: where the node keeps log filters (eth-tester, hardhat) the observer installs one at
    start and reads it at the end; eth-tester answers eth_getLogs and receipts by walking back
    from the head, quadratic over a long run, while a filter collects each block's logs once,
    when it is mined. Elsewhere (the revm backend) it asks eth_getLogs at the end.
    """

    def __init__(self, reader: ChainReader) -> None:
        self.reader = reader
        self._filter = reader.new_log_filter()

    def capture(self, contracts: Mapping[str, ContractKind], timetable: Timetable) -> ChainCapture:
        """Decode what the chain shows about the watched contracts (address -> kind), with
        each item placed in its slot of the public timetable."""
        reader = self.reader
        for address, kind in contracts.items():
            if kind not in ARTIFACT_OF:
                raise ObserverError(f"contract {address}: unknown kind {kind!r}")
        decoders = {
            a.lower(): _Decoder(load_artifact(ARTIFACT_OF[k])["abi"]) for a, k in contracts.items()
        }
        kinds = {a.lower(): k for a, k in contracts.items()}
        capture = ChainCapture(timetable, kinds)
        slot_of_block: dict[int, int | None] = {}
        for number in range(reader.block_number() + 1):
            block = reader.block(number)
            slot = slot_of_block[number] = timetable.slot_of(block["timestamp"])
            txs = block["transactions"]
            for tx in txs:
                to = (tx.get("to") or "").lower()
                if to not in kinds:
                    continue
                capture.transactions += 1
                call = decoders[to].call(bytes(tx.get("input", tx.get("data", b""))))
                if call is None or call[0] != "submitRange" or slot is None:
                    continue
                # Alone in its block (auto-mining), a transaction used the block's gas; that
                # spares eth-tester's slow receipt lookup.
                gas = block["gasUsed"] if len(txs) == 1 else reader.receipt(tx["hash"])["gasUsed"]
                args = call[1]
                if kinds[to] == "baseline":
                    numbers = _parse_range(args["range"])
                else:
                    numbers = (_signed(args["maskedLower"]), _signed(args["maskedUpper"]))
                capture.submissions.append(
                    Submission(str(tx["from"]).lower(), to, slot, numbers, int(gas))
                )
        rounds: set[tuple[str, int, int, int]] = set()  # (contract, round, group, slot)
        if self._filter is not None:
            logs = reader.filter_logs(self._filter)
        else:
            logs = reader.logs(list(kinds), reader.block_number())
        for log in logs:
            address = str(log["address"]).lower()
            if address not in kinds:
                continue
            capture.logs += 1
            event = decoders[address].log(log)
            slot = slot_of_block.get(int(log["blockNumber"]))
            if event is None:
                continue
            name, args = event
            if name == "UserClaimed" and kinds[address] == "private":
                capture.private_group_of[str(args["home"]).lower()] = (address, int(args["group"]))
            elif name == "PriceSubmitted" and kinds[address] == "private" and slot is not None:
                rounds.add((address, int(args["round"]), int(args["group"]), slot))
            elif name == "Aggregated" and slot is not None:
                # the seed contract publishes its (only) group's sums in plaintext
                capture.group_sums[(address, 0, slot)] = (
                    int(args["lowerAgg"]),
                    int(args["upperAgg"]),
                )
        # The private contract keeps each round's running sums in storage (never cleared).
        sums_slot = _storage_slot(ARTIFACT_OF["private"], "_sums")
        for address, round_, group, slot in sorted(rounds):
            location = _mapping_slot(group, _mapping_slot(round_, sums_slot))
            word = int.from_bytes(reader.storage_at(address, location), "big")
            capture.storage_reads += 1
            # packed as (upper << 128) | lower, both halves offset by 1 (see the contract)
            capture.group_sums[(address, group, slot)] = (
                _signed((word & WORD_MASK) - 1),
                _signed((word >> 128) - 1),
            )
        return capture


# ---------------------------------------------------------------- per-home series


@dataclass(frozen=True)
class ObservedSeries:
    """One observer's view of the target homes: values (homes, slots, channels), NaN where it
    saw nothing. `units` (homes,) names the independent unit behind each home's values: the
    home itself for its own submissions, its group for group sums (every member sees the
    same numbers), so that intervals resample units, not correlated samples."""

    observer: str  # "chain-home", "chain-group" or "dso"
    contract: str  # "baseline" or "private"
    values: np.ndarray
    channels: tuple[str, ...]
    units: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[2] != len(self.channels):
            raise ObserverError(
                f"values must be (homes, slots, {len(self.channels)} channels), "
                f"got {self.values.shape}"
            )
        if self.units.shape != (self.values.shape[0],):
            raise ObserverError(f"units must be ({self.values.shape[0]},), got {self.units.shape}")


HOME_CHANNELS = ("submitted_first", "submitted_second", "gas_vs_round_median")
GROUP_CHANNELS = ("group_first", "group_second")


def _check_kind(contract: str) -> None:
    if contract not in ARTIFACT_OF:
        raise ObserverError(f"unknown contract kind {contract!r}; use {sorted(ARTIFACT_OF)}")


def chain_home_series(
    capture: ChainCapture, contract: str, targets: Sequence[str]
) -> ObservedSeries:
    """Each target home's own submissions to one contract kind, as the chain shows them.

    Channels: the two numbers in the call (plaintext bounds in W on the seed contract, masked
    words read as signed integers on the private one) and the gas the transaction used minus
    the median gas of that round's submissions. Gas is a side channel (calldata gas depends on
    how many bytes of the input are zero); taken raw it also carries the round number's
    length in bytes (12 gas more from round 256 on), a clock that the attacker would match to
    the hour of day, which the hour-of-day reference already covers.
    """
    _check_kind(contract)
    index = {t.lower(): i for i, t in enumerate(targets)}
    ours = [s for s in capture.submissions if capture.kinds[s.contract] == contract]
    gas_by_slot: dict[int, list[int]] = {}
    for sub in ours:
        gas_by_slot.setdefault(sub.slot, []).append(sub.gas_used)
    median_gas = {slot: float(np.median(g)) for slot, g in gas_by_slot.items()}
    values = np.full((len(targets), capture.timetable.n_slots, len(HOME_CHANNELS)), np.nan)
    for sub in ours:
        if sub.sender in index:
            gas = sub.gas_used - median_gas[sub.slot]
            values[index[sub.sender], sub.slot] = (*sub.numbers, gas)
    missing = [targets[i] for i in np.flatnonzero(np.isnan(values).all(axis=(1, 2)))]
    if missing:
        raise ObserverError(f"no {contract} submissions on chain from {missing[:3]}")
    return ObservedSeries("chain-home", contract, values, HOME_CHANNELS, np.arange(len(targets)))


def chain_group_series(
    capture: ChainCapture, contract: str, targets: Sequence[str]
) -> ObservedSeries:
    """The sums of each target home's group as the chain shows them: the Aggregated event of
    the seed instance the home submits to (plaintext), or the private contract's storage word
    of the group its UserClaimed log names (masked with the DSO's masks)."""
    _check_kind(contract)
    index = {t.lower(): i for i, t in enumerate(targets)}
    values = np.full((len(targets), capture.timetable.n_slots, len(GROUP_CHANNELS)), np.nan)
    group_key: dict[int, tuple[str, int]] = {}
    for sub in capture.submissions:
        if capture.kinds[sub.contract] != contract or sub.sender not in index:
            continue
        i = index[sub.sender]
        if contract == "baseline":
            key = (sub.contract, 0)  # one seed instance aggregates one group
        elif sub.sender in capture.private_group_of:
            key = capture.private_group_of[sub.sender]
        else:
            raise ObserverError(f"no UserClaimed log for home {sub.sender}")
        group_key.setdefault(i, key)
        sums = capture.group_sums.get((*key, sub.slot))
        if sums is not None:
            values[i, sub.slot] = sums
    if len(group_key) != len(targets) or np.isnan(values).all(axis=(1, 2)).any():
        raise ObserverError(f"some target homes have no {contract} group sums on chain")
    keys = sorted(set(group_key.values()))
    units = np.array([keys.index(group_key[i]) for i in range(len(targets))])
    return ObservedSeries("chain-group", contract, values, GROUP_CHANNELS, units)


DSO_CHANNELS = ("group_lower_w", "group_upper_w")


def dso_series(
    sums_w: Mapping[tuple[int, int], tuple[int, int]],
    group_of_target: Sequence[int],
    n_slots: int,
) -> ObservedSeries:
    """The DSO's view on the private contract: each target home's group's unmasked (lower,
    upper) sums in W, keyed (group, slot). Every home of a group gets the same values."""
    groups = np.asarray(group_of_target)
    values = np.full((len(groups), n_slots, len(DSO_CHANNELS)), np.nan)
    for (group, slot), sums in sums_w.items():
        if not 0 <= slot < n_slots:
            raise ObserverError(f"group sum for slot {slot} outside 0..{n_slots - 1}")
        values[groups == group, slot] = sums
    if np.isnan(values).all(axis=(1, 2)).any():
        raise ObserverError("some target homes have no group sums at all")
    return ObservedSeries("dso", "private", values, DSO_CHANNELS, groups.copy())
