"""Python client of the PrivateAggregation contract: deployment, the DSO and the homes.

Units at this interface: demand bounds in integer watts (signed), prices in $/kWh, lambda as
a float in [0, 1], times as block timestamps in seconds. On chain: the fixed-point scales of
``sim.chain.units``.

Length: the contract's three parties (the contract handle with its views, the DSO, a home)
share its ABI, its statuses and the masking context; each class is short, the file is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount

from sim.chain.artifacts import load_artifact
from sim.chain.connection import Chain, TxRequest
from sim.chain.keys import PartyKeys, attestation_signer
from sim.chain.masking import (
    FIELDS,
    DSOUnmasker,
    HomeMasker,
    MaskContext,
    PrivacyError,
    pack_words,
    public_key_bytes,
)
from sim.chain.units import (
    LAMBDA_SCALE,
    lambda_from_chain,
    lambda_to_chain,
    price_from_chain,
    price_to_chain,
)
from sim.chain.views import ViewCaller
from sim.constants import DEFAULT_MIN_GROUP_SIZE, DEFAULT_RECOVERY_S

CONTRACT_NAME = "PrivateAggregation"
LAMBDAS_PER_WORD = 8  # uint32 lanes of one uint256 in submitLambdas


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
class RoundState:
    """One (round, group) as the homes need it for recovery: status, submissions, recoveries."""

    status: Status
    submissions: RoundSubmissions
    recovered_bitmap: int

    def recovered(self, index: int) -> bool:
        return bool(self.recovered_bitmap >> index & 1)


@dataclass(frozen=True)
class MemberInfo:
    address: str
    index: int
    public_key: bytes
    joined_epoch: int
    removed_epoch: int  # 0 while a member
    attestation: tuple[bytes, bytes]  # the registrar's (r, vs) as the DSO registered it

    def in_epoch(self, epoch: int) -> bool:
        return self.joined_epoch <= epoch and (
            self.removed_epoch == 0 or self.removed_epoch > epoch
        )


def pack_lambdas(values: Sequence[int]) -> list[int]:
    """Scaled lambdas (in the round's opening order) as submitLambdas' uint256 words."""
    words = [0] * ((len(values) + LAMBDAS_PER_WORD - 1) // LAMBDAS_PER_WORD)
    for k, value in enumerate(values):
        if not 0 <= value <= LAMBDA_SCALE:
            raise ValueError(f"scaled lambda {value} outside 0..{LAMBDA_SCALE}")
        words[k // LAMBDAS_PER_WORD] |= int(value) << (32 * (k % LAMBDAS_PER_WORD))
    return words


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
        self.registrar = str(self.web3_contract.functions.registrar().call())
        self._members: dict[tuple[int, int], dict[int, MemberInfo]] = {}
        self._round_epochs: dict[tuple[int, int], int] = {}
        self._round_dso_keys: dict[tuple[int, int], bytes] = {}

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        dso_account: LocalAccount,
        dso_key: X25519PrivateKey,
        registrar: str,
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
            registrar,
            min_group_size,
            recovery_period_s,
        )
        return cls(chain, deployed.address)

    def call(self, name: str, *args):
        """A view function's answer (web3's formats); a refusal raises ContractRevert."""
        return self._view(name, *args)

    def call_many(self, calls: list[tuple]) -> list:
        """Several view calls `(name, *args)` at once (one request to a JSON-RPC node)."""
        return self._view.many(calls) if calls else []

    def statuses(self, round_: int, groups: list[int]) -> dict[int, Status]:
        answers = self.call_many([("status", round_, g) for g in groups])
        return {g: Status(a) for g, a in zip(groups, answers, strict=True)}

    def price_bands(self, round_: int, groups: list[int]) -> dict[int, PriceBand]:
        answers = self.call_many([("getPrice", round_, g) for g in groups])
        return {
            g: PriceBand(price_from_chain(lo), price_from_chain(hi), int(deadline))
            for g, (lo, hi, deadline) in zip(groups, answers, strict=True)
        }

    def round_states(self, round_: int, groups: list[int]) -> dict[int, RoundState]:
        """Status, submissions and recoveries of several groups in one request per kind."""
        calls = []
        for g in groups:
            calls += [("status", round_, g), ("getSubmissions", round_, g)]
            calls.append(("getRecoveries", round_, g))
        answers = self.call_many(calls)
        return {
            g: RoundState(
                Status(answers[3 * k]), RoundSubmissions(*answers[3 * k + 1]), answers[3 * k + 2][0]
            )
            for k, g in enumerate(groups)
        }

    def lambdas(self, round_: int, groups: list[int]) -> dict[int, float]:
        """Each group's dispatch factor of `round_` in [0, 1] (one request)."""
        answers = self.call_many([("getLambda", round_, g) for g in groups])
        return {g: lambda_from_chain(a) for g, a in zip(groups, answers, strict=True)}

    def _web3_call(self, name: str, *args):
        return self.chain.call(
            f"private.{name}", getattr(self.web3_contract.functions, name)(*args)
        )

    def status(self, round_: int, group: int) -> Status:
        return Status(self.call("status", round_, group))

    def submissions(self, round_: int, group: int) -> RoundSubmissions:
        return RoundSubmissions(*self.call("getSubmissions", round_, group))

    def round_state(self, round_: int, group: int) -> RoundState:
        return self.round_states(round_, [group])[group]

    def round_epoch(self, round_: int, group: int) -> int:
        """The membership epoch a round opened with (fixed once opened, so cached)."""
        key = (round_, group)
        if key not in self._round_epochs:
            self._round_epochs[key] = self.submissions(round_, group).epoch
        return self._round_epochs[key]

    def round_dso_key(self, round_: int, group: int) -> bytes:
        """The DSO X25519 public key a round opened with (fixed once opened, so cached)."""
        key = (round_, group)
        if key not in self._round_dso_keys:
            self._round_dso_keys[key] = bytes(self.call("roundDsoKey", round_, group))
        return self._round_dso_keys[key]

    def price_band(self, round_: int, group: int) -> PriceBand:
        """The public price band the DSO posted for `group` in `round_`."""
        return self.price_bands(round_, [group])[group]

    def recovery_bitmap(self, round_: int, group: int) -> int:
        return int(self.call("getRecoveries", round_, group)[0])

    def mask_context(self, group: int, epoch: int) -> MaskContext:
        return MaskContext(self.chain.chain_id, self.address, group, epoch)

    def members(self, group: int, epoch: int) -> dict[int, MemberInfo]:
        """The member set of `group` at membership epoch `epoch`, by member index."""
        key = (group, epoch)
        if key not in self._members:
            slots = self.call("getGroupSlots", group)
            calls = []
            for address in slots:
                calls += [("getMember", address), ("pubKeyOf", address)]
                calls.append(("attestationOf", address))
            answers = self.call_many(calls)
            found = {}
            for index, address in enumerate(slots):
                member, pub_key, (r, vs) = answers[3 * index : 3 * index + 3]
                _, _, joined, removed, _ = member
                info = MemberInfo(
                    address, index, bytes(pub_key), joined, removed, (bytes(r), bytes(vs))
                )
                if info.in_epoch(epoch):
                    found[index] = info
            self._members[key] = found
        return self._members[key]

    def unattested(self, group: int, epoch: int, registrar: str) -> list[str]:
        """Members of `group` at `epoch` whose (address, group, key) carries no valid
        signature of `registrar`."""
        bad = []
        for info in self.members(group, epoch).values():
            signer = attestation_signer(
                self.chain.chain_id,
                self.address,
                info.address,
                group,
                info.public_key,
                *info.attestation,
            )
            if signer is None or signer.lower() != registrar.lower():
                bad.append(info.address)
        return bad


class DSOClient:
    """The DSO's protocol calls. It never sees a home's value, only unmasked group sums."""

    def __init__(self, contract: PrivateAggregation, account: LocalAccount, key: X25519PrivateKey):
        self.contract = contract
        self.account = account
        self._unmasker = DSOUnmasker([key])

    def _transact(self, name: str, *args, round_: int | None = None) -> dict:
        fn = getattr(self.contract.web3_contract.functions, name)(*args)
        return self.contract.chain.transact(f"private.{name}", self.account, fn, round_)

    def register_home(
        self, home: str, group: int, public_key: bytes, attestation: tuple[bytes, bytes]
    ) -> None:
        """Whitelist `home` in `group` with its X25519 key and the registrar's (r, vs)."""
        self._transact("claimUser", home, group, public_key, *attestation)

    def remove_home(self, home: str) -> None:
        """Remove `home` from its group for rounds opened from now on."""
        self._transact("removeUser", home)

    def rotate_key(self, key: X25519PrivateKey) -> None:
        """Post a new DSO X25519 key for rounds opened from now on; the old one is kept to
        unmask rounds already open."""
        self._unmasker.add_key(key)
        self._transact("setDsoKey", public_key_bytes(key))

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
        dso_public = self.contract.round_dso_key(round_, group)
        contributors = {
            i: m.public_key
            for i, m in self.contract.members(group, subs.epoch).items()
            if subs.submitted(i)
        }
        sums = {
            field: self._unmasker.unmask(word, contributors, ctx, round_, field, dso_public)
            for field, word in zip(FIELDS, (lower, upper), strict=True)
        }
        return GroupAggregate(round_, group, sums["lower"], sums["upper"], count, True)

    def post_lambda(self, round_: int, lam: float) -> None:
        """Post one dispatch factor lambda in [0, 1] (rounded to 1e-6) for every group of the
        round (the seed paper's single lambda)."""
        self._transact("submitLambda", round_, lambda_to_chain(lam), round_=round_)

    def post_lambdas(self, round_: int, lambdas: Mapping[int, float]) -> None:
        """Post one dispatch factor per group ({group: lambda in [0, 1]}, rounded to 1e-6) in
        one transaction; the groups must be exactly those opened in the round."""
        order = [int(g) for g in self.contract.call("getRoundGroups", round_)]
        if set(order) != {int(g) for g in lambdas} or len(lambdas) != len(order):
            raise ValueError(
                f"round {round_} opened groups {sorted(order)}; lambdas given for "
                f"{sorted(int(g) for g in lambdas)}"
            )
        by_group = {int(g): lam for g, lam in lambdas.items()}
        words = pack_lambdas([lambda_to_chain(by_group[g]) for g in order])
        self._transact("submitLambdas", round_, words, round_=round_)


class HomeClient:
    """One home's protocol calls: read the band, submit masked bounds, recover, read lambda.

    `registrar` is the address the home was told, out of band, attests members (its meter
    certifier); the home refuses a contract with another registrar and a round whose member
    set has a member without that registrar's attestation.
    """

    def __init__(self, contract: PrivateAggregation, keys: PartyKeys, registrar: str) -> None:
        if contract.registrar.lower() != registrar.lower():
            raise PrivacyError(
                f"contract {contract.address} names registrar {contract.registrar}, not "
                f"{registrar}, the one this home trusts: refusing it"
            )
        self.contract = contract
        self.keys = keys
        self.account = keys.account
        self.registrar = registrar
        self.public_key = keys.public_key
        self._maskers: dict[tuple[int, bytes], HomeMasker] = {}
        self._checked: set[tuple[int, int]] = set()
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

    def check_members(self, group: int, epoch: int) -> None:
        """Refuse (PrivacyError naming them) a member set with an unattested member."""
        if (group, epoch) in self._checked:
            return
        bad = self.contract.unattested(group, epoch, self.registrar)
        if bad:
            raise PrivacyError(
                f"group {group} (epoch {epoch}) has members without a valid attestation of "
                f"registrar {self.registrar}: {', '.join(bad)}; home {self.address} refuses "
                "to submit to it"
            )
        self._checked.add((group, epoch))

    def _masker(self, round_: int, group: int, epoch: int) -> HomeMasker:
        dso_key = self.contract.round_dso_key(round_, group)
        if (epoch, dso_key) not in self._maskers:
            self.check_members(group, epoch)
            members = self.contract.members(group, epoch)
            _, index = self._membership()
            self._maskers[(epoch, dso_key)] = HomeMasker(
                self.keys.x25519,
                self.keys.self_secret,
                index,
                {i: m.public_key for i, m in members.items()},
                dso_key,
                self.contract.mask_context(group, epoch),
            )
        return self._maskers[(epoch, dso_key)]

    def read_price(self, round_: int) -> PriceBand:
        return self.contract.price_band(round_, self._membership()[0])

    def masked_range(self, round_: int, lower_w: int, upper_w: int) -> tuple[int, int]:
        """The two words this home submits for its bounds in watts."""
        group, index = self._membership()
        epoch = self.contract.round_epoch(round_, group)
        if index not in self.contract.members(group, epoch):
            raise PrivacyError(
                f"home {self.address} is not in the member set of round {round_} of group "
                f"{group} (registered after the round opened, or removed before)"
            )
        masker = self._masker(round_, group, epoch)
        return masker.mask(round_, "lower", lower_w), masker.mask(round_, "upper", upper_w)

    def _request(self, name: str, *args, round_: int) -> TxRequest:
        fn = getattr(self.contract.web3_contract.functions, name)(*args)
        return TxRequest(f"private.{name}", self.account, fn, round_)

    def range_request(self, round_: int, lower_w: int, upper_w: int) -> TxRequest:
        """The masked submitRange transaction of the band format's [Lmin, Lmax] (W), for
        `Chain.transact_many` over a fleet."""
        if lower_w > upper_w:
            raise ValueError(f"lower bound {lower_w} W exceeds upper bound {upper_w} W")
        return self.words_request(round_, lower_w, upper_w)

    def words_request(self, round_: int, lower: int, upper: int) -> TxRequest:
        """The masked submitRange transaction of two plaintext words (signed integers; a
        ladder bid's packed lanes, ``sim.chain.bids``)."""
        words = self.masked_range(round_, lower, upper)
        return self._request("submitRange", round_, *words, round_=round_)

    def submit_range(self, round_: int, lower_w: int, upper_w: int) -> None:
        request = self.range_request(round_, lower_w, upper_w)
        self.contract.chain.transact(request.label, self.account, request.fn, round_)

    def needs_recovery(self, round_: int, state: RoundState | None = None) -> bool:
        """Whether this home is a survivor of the round that has not sent its recovery yet
        (`state`: the group's `round_state`, read once for a whole fleet)."""
        group, index = self._membership()
        state = state or self.contract.round_state(round_, group)
        return (
            state.status == Status.RECOVERY
            and state.submissions.submitted(index)
            and not state.recovered(index)
        )

    def recovery_request(self, round_: int, state: RoundState | None = None) -> TxRequest:
        """The recover transaction: minus the self-mask, minus the pairwise masks with the
        round's dropped members. Refused unless the survivors are fixed on chain, this home is
        one of them and at least the minimum group size survived (below it the survivors' sum
        would reveal too much; with one survivor, its own value)."""
        group, index = self._membership()
        state = state or self.contract.round_state(round_, group)
        subs = state.submissions
        if state.status == Status.OPEN:
            raise PrivacyError(
                f"round {round_} of group {group} is still open: its survivors are not fixed "
                "yet; no recovery is sent"
            )
        if subs.count < self.contract.min_group_size:
            raise PrivacyError(
                f"round {round_} of group {group}: only {subs.count} homes survived, fewer than "
                f"the minimum group size {self.contract.min_group_size}; no recovery is sent"
            )
        if not subs.submitted(index):
            raise PrivacyError(
                f"home {self.address} did not submit in round {round_}: it is no survivor and "
                "never reveals its self-mask"
            )
        if state.status != Status.RECOVERY:
            raise PrivacyError(
                f"round {round_} of group {group} is {state.status.name}, not RECOVERY: "
                "no recovery is sent"
            )
        members = self.contract.members(group, subs.epoch)
        dropped = [i for i in members if not subs.submitted(i)]
        masker = self._masker(round_, group, subs.epoch)
        words = pack_words(*(masker.recovery(round_, f, dropped) for f in FIELDS))
        return self._request("recover", round_, words, round_=round_)

    def send_recovery(self, round_: int) -> None:
        """Send this survivor's recovery word (see `recovery_request`)."""
        request = self.recovery_request(round_)
        self.contract.chain.transact(request.label, self.account, request.fn, round_)

    def read_lambda(self, round_: int) -> float:
        """This home's group's dispatch factor of `round_` in [0, 1]."""
        return lambda_from_chain(self.contract.call("getLambda", round_, self._membership()[0]))
