"""Python client of the PrivateAggregation contract: deployment, the DSO and the homes.

Units at this interface: demand bounds in integer watts (signed), prices in $/kWh, lambda as
a float in [0, 1], times as block timestamps in seconds. On chain: the fixed-point scales of
``sim.chain.units``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount

from sim.chain.artifacts import load_artifact
from sim.chain.connection import Chain, TxRequest
from sim.chain.masking import (
    FIELDS,
    DSOUnmasker,
    HomeMasker,
    MaskContext,
    PrivacyError,
    public_key_bytes,
)
from sim.chain.units import lambda_from_chain, lambda_to_chain, price_from_chain, price_to_chain
from sim.chain.views import ViewCaller
from sim.constants import DEFAULT_MIN_GROUP_SIZE, DEFAULT_RECOVERY_S

CONTRACT_NAME = "PrivateAggregation"


class Status(IntEnum):
    """Mirror of IPrivateAggregation.Status."""

    NONE = 0
    OPEN = 1
    RECOVERY = 2
    COMPLETE = 3
    FAILED = 4


@dataclass(frozen=True)
class PriceBand:
    p_low: float  # $/kWh
    p_high: float  # $/kWh
    deadline: int  # block timestamp (s)


@dataclass(frozen=True)
class GroupAggregate:
    """A group's unmasked sums of the homes' bounds (W) for one round."""

    round: int
    group: int
    lower_w: int
    upper_w: int
    contributors: int
    complete: bool


@dataclass(frozen=True)
class RoundSubmissions:
    bitmap: int
    count: int
    deadline: int
    epoch: int
    expected: int

    def submitted(self, index: int) -> bool:
        return bool(self.bitmap >> index & 1)


@dataclass(frozen=True)
class MemberInfo:
    address: str
    index: int
    public_key: bytes
    joined_epoch: int
    removed_epoch: int  # 0 while a member

    def in_epoch(self, epoch: int) -> bool:
        return self.joined_epoch <= epoch and (
            self.removed_epoch == 0 or self.removed_epoch > epoch
        )


class PrivateAggregation:
    """A deployed PrivateAggregation contract and read access to its public state."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.web3_contract = chain.w3.eth.contract(
            address=address, abi=load_artifact(CONTRACT_NAME)["abi"]
        )
        self.address = self.web3_contract.address
        self._view = ViewCaller(
            chain.w3.provider, self.address, self.web3_contract.abi, self._web3_call
        )
        self.min_group_size = int(self.web3_contract.functions.minGroupSize().call())
        self.recovery_period_s = int(self.web3_contract.functions.recoveryPeriod().call())
        self._members: dict[tuple[int, int], dict[int, MemberInfo]] = {}
        self._round_epochs: dict[tuple[int, int], int] = {}

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        dso_account: LocalAccount,
        dso_key: X25519PrivateKey,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        recovery_period_s: int = DEFAULT_RECOVERY_S,
    ) -> PrivateAggregation:
        factory = chain.w3.eth.contract(
            abi=load_artifact(CONTRACT_NAME)["abi"],
            bytecode=load_artifact(CONTRACT_NAME)["bytecode"],
        )
        deployed = chain.deploy(
            "private.deploy",
            dso_account,
            factory,
            dso_account.address,
            public_key_bytes(dso_key),
            min_group_size,
            recovery_period_s,
        )
        return cls(chain, deployed.address)

    def call(self, name: str, *args):
        """A view function's answer (web3's formats); a refusal raises ContractRevert."""
        return self._view(name, *args)

    def call_many(self, calls: list[tuple]) -> list:
        """Several view calls `(name, *args)` at once (one request to a JSON-RPC node)."""
        return self._view.many(calls)

    def statuses(self, round_: int, groups: list[int]) -> dict[int, Status]:
        answers = self.call_many([("status", round_, g) for g in groups])
        return {g: Status(a) for g, a in zip(groups, answers, strict=True)}

    def price_bands(self, round_: int, groups: list[int]) -> dict[int, PriceBand]:
        answers = self.call_many([("getPrice", round_, g) for g in groups])
        return {
            g: PriceBand(price_from_chain(lo), price_from_chain(hi), int(deadline))
            for g, (lo, hi, deadline) in zip(groups, answers, strict=True)
        }

    def _web3_call(self, name: str, *args):
        return self.chain.call(
            f"private.{name}", getattr(self.web3_contract.functions, name)(*args)
        )

    def status(self, round_: int, group: int) -> Status:
        return Status(self.call("status", round_, group))

    def submissions(self, round_: int, group: int) -> RoundSubmissions:
        return RoundSubmissions(*self.call("getSubmissions", round_, group))

    def round_epoch(self, round_: int, group: int) -> int:
        """The membership epoch a round opened with (fixed once opened, so cached)."""
        key = (round_, group)
        if key not in self._round_epochs:
            self._round_epochs[key] = self.submissions(round_, group).epoch
        return self._round_epochs[key]

    def price_band(self, round_: int, group: int) -> PriceBand:
        """The public price band the DSO posted for `group` in `round_`."""
        return self.price_bands(round_, [group])[group]

    def correction_bitmap(self, round_: int, group: int) -> int:
        return int(self.call("getCorrections", round_, group)[0])

    def mask_context(self, group: int, epoch: int) -> MaskContext:
        return MaskContext(self.chain.chain_id, self.address, group, epoch)

    def members(self, group: int, epoch: int) -> dict[int, MemberInfo]:
        """The member set of `group` at membership epoch `epoch`, by member index."""
        key = (group, epoch)
        if key not in self._members:
            found = {}
            for index, address in enumerate(self.call("getGroupSlots", group)):
                _, _, joined, removed, _ = self.call("getMember", address)
                info = MemberInfo(
                    address, index, bytes(self.call("pubKeyOf", address)), joined, removed
                )
                if info.in_epoch(epoch):
                    found[index] = info
            self._members[key] = found
        return self._members[key]


class DSOClient:
    """The DSO's protocol calls. It never sees a home's value, only unmasked group sums."""

    def __init__(self, contract: PrivateAggregation, account: LocalAccount, key: X25519PrivateKey):
        self.contract = contract
        self.account = account
        self._unmasker = DSOUnmasker(key)

    def _transact(self, name: str, *args, round_: int | None = None) -> dict:
        fn = getattr(self.contract.web3_contract.functions, name)(*args)
        return self.contract.chain.transact(f"private.{name}", self.account, fn, round_)

    def register_home(self, home: str, group: int, public_key: bytes) -> None:
        self._transact("claimUser", home, group, public_key)

    def remove_home(self, home: str) -> None:
        self._transact("removeUser", home)

    def open_round(
        self, round_: int, group: int, p_low: float, p_high: float, deadline: int
    ) -> None:
        """Post the price band ($/kWh) of `group` for `round_` with its deadline (timestamp)."""
        self._transact(
            "submitPrice",
            round_,
            group,
            price_to_chain(p_low),
            price_to_chain(p_high),
            deadline,
            round_=round_,
        )

    def open_rounds(
        self, round_: int, bands: dict[int, tuple[float, float]], deadline: int
    ) -> None:
        """`open_round` for every group of `bands` ({group: (p_low, p_high)}, $/kWh) in one
        batch: one block for the slot's prices, not one per group."""
        requests = [
            TxRequest(
                "private.submitPrice",
                self.account,
                self.contract.web3_contract.functions.submitPrice(
                    round_, group, price_to_chain(p_low), price_to_chain(p_high), deadline
                ),
                round_,
            )
            for group, (p_low, p_high) in bands.items()
        ]
        self.contract.chain.transact_many(requests)

    def read_aggregate(self, round_: int, group: int) -> GroupAggregate:
        """The group's plaintext sums (W), unmasked with the DSO's keys once complete."""
        lower, upper, count, complete = self.contract.call("getAgg", round_, group)
        if not complete:
            return GroupAggregate(round_, group, 0, 0, count, False)
        subs = self.contract.submissions(round_, group)
        ctx = self.contract.mask_context(group, subs.epoch)
        contributors = {
            i: m.public_key
            for i, m in self.contract.members(group, subs.epoch).items()
            if subs.submitted(i)
        }
        sums = {
            field: self._unmasker.unmask(word, contributors, ctx, round_, field)
            for field, word in zip(FIELDS, (lower, upper), strict=True)
        }
        return GroupAggregate(round_, group, sums["lower"], sums["upper"], count, True)

    def post_lambda(self, round_: int, lam: float) -> None:
        """Post the dispatch factor lambda in [0, 1] (rounded to 1e-6)."""
        self._transact("submitLambda", round_, lambda_to_chain(lam), round_=round_)


class HomeClient:
    """One home's protocol calls: read the band, submit masked bounds, recover, read lambda."""

    def __init__(self, contract: PrivateAggregation, account: LocalAccount, key: X25519PrivateKey):
        self.contract = contract
        self.account = account
        self.key = key
        self.public_key = public_key_bytes(key)
        self._maskers: dict[int, HomeMasker] = {}
        self._group_index: tuple[int, int] | None = None

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def group(self) -> int:
        return self._membership()[0]

    def _membership(self) -> tuple[int, int]:
        """(group, member index); both are fixed once the DSO registered the home."""
        if self._group_index is None:
            group, index, _, _, registered = self.contract.call("getMember", self.address)
            if not registered:
                raise PrivacyError(f"home {self.address} is not registered with the contract")
            self._group_index = int(group), int(index)
        return self._group_index

    def _masker(self, group: int, epoch: int) -> HomeMasker:
        if epoch not in self._maskers:
            members = self.contract.members(group, epoch)
            _, index = self._membership()
            dso_key = bytes(self.contract.call("dsoKey"))
            self._maskers[epoch] = HomeMasker(
                self.key,
                index,
                {i: m.public_key for i, m in members.items()},
                dso_key,
                self.contract.mask_context(group, epoch),
            )
        return self._maskers[epoch]

    def read_price(self, round_: int) -> PriceBand:
        return self.contract.price_band(round_, self._membership()[0])

    def masked_range(self, round_: int, lower_w: int, upper_w: int) -> tuple[int, int]:
        """The two words this home submits for its bounds in watts."""
        group, index = self._membership()
        epoch = self.contract.round_epoch(round_, group)
        if index not in self.contract.members(group, epoch):
            raise PrivacyError(
                f"home {self.address} is not in the member set of round {round_} of group "
                f"{group} (registered after the round opened, or removed)"
            )
        masker = self._masker(group, epoch)
        return masker.mask(round_, "lower", lower_w), masker.mask(round_, "upper", upper_w)

    def _request(self, name: str, *args, round_: int) -> TxRequest:
        fn = getattr(self.contract.web3_contract.functions, name)(*args)
        return TxRequest(f"private.{name}", self.account, fn, round_)

    def range_request(self, round_: int, lower_w: int, upper_w: int) -> TxRequest:
        """The masked submitRange transaction, for `Chain.transact_many` over a fleet."""
        if lower_w > upper_w:
            raise ValueError(f"lower bound {lower_w} W exceeds upper bound {upper_w} W")
        words = self.masked_range(round_, lower_w, upper_w)
        return self._request("submitRange", round_, *words, round_=round_)

    def submit_range(self, round_: int, lower_w: int, upper_w: int) -> None:
        request = self.range_request(round_, lower_w, upper_w)
        self.contract.chain.transact(request.label, self.account, request.fn, round_)

    def needs_correction(self, round_: int) -> bool:
        group, index = self._membership()
        if self.contract.status(round_, group) != Status.RECOVERY:
            return False
        return not self.contract.correction_bitmap(round_, group) >> index & 1

    def send_correction(self, round_: int) -> None:
        """Cancel this home's masks with the round's dropouts (recovery phase only).

        Refused when fewer than the minimum group size survived: the sum of the survivors would
        then reveal too much (with one survivor, its own value).
        """
        request = self.correction_request(round_)
        self.contract.chain.transact(request.label, self.account, request.fn, round_)

    def correction_request(self, round_: int) -> TxRequest:
        """The submitCorrection transaction (see `send_correction`), for `Chain.transact_many`."""
        group, index = self._membership()
        subs = self.contract.submissions(round_, group)
        if subs.count < self.contract.min_group_size:
            raise PrivacyError(
                f"round {round_} of group {group}: only {subs.count} homes survived, fewer than "
                f"the minimum group size {self.contract.min_group_size}; no correction is sent"
            )
        if not subs.submitted(index):
            raise PrivacyError(f"home {self.address} did not submit in round {round_}")
        members = self.contract.members(group, subs.epoch)
        dropped = [i for i in members if not subs.submitted(i)]
        masker = self._masker(group, subs.epoch)
        words = [masker.correction(round_, f, dropped) for f in FIELDS]
        return self._request("submitCorrection", round_, *words, round_=round_)

    def read_lambda(self, round_: int) -> float:
        return lambda_from_chain(self.contract.call("getLambda", round_))
