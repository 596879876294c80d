"""The private aggregation protocol end to end (paper's Algorithm 1), on every backend."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils import keccak

from sim.chain.artifacts import load_artifact
from sim.chain.connection import Chain, ContractRevert
from sim.chain.deployment import Market, setup_market
from sim.chain.keys import random_account
from sim.chain.masking import MODULUS, PrivacyError, decode_watts
from sim.chain.private import Status

DEADLINE_S = 300


def _slot_of(label: str) -> int:
    layout = load_artifact("PrivateAggregation")["storageLayout"]["storage"]
    return next(int(s["slot"]) for s in layout if s["label"] == label)


def mapping2_slot(label: str, key1: int, key2: int) -> int:
    """Storage slot of `label[key1][key2]` (Solidity layout of nested mappings)."""
    inner = keccak(key1.to_bytes(32, "big") + _slot_of(label).to_bytes(32, "big"))
    return int.from_bytes(keccak(key2.to_bytes(32, "big") + inner), "big")


def open_round(market: Market, round_: int, p_low: float = 0.08, p_high: float = 0.21) -> int:
    deadline = market.chain.now() + DEADLINE_S
    for group in sorted(set(market.groups)):
        market.dso.open_round(round_, group, p_low, p_high, deadline)
    return deadline


def plaintext_bounds(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """Distinctive signed watt values (PV export makes lower bounds negative)."""
    out = []
    for _ in range(n):
        lower = rng.randrange(-4_000_000, 6_000_000) + 1_000_003
        out.append((lower, lower + rng.randrange(1, 3_000_000)))
    return out


@pytest.fixture
def market(chain: Chain) -> Market:
    return setup_market(chain, [0] * 6 + [1] * 5)


def test_three_rounds_dso_unmasks_exact_sums_others_see_noise(market: Market) -> None:
    rng = random.Random(7)
    chain = market.chain
    for round_ in (1, 2, 3):
        open_round(market, round_, p_low=0.05 + 0.01 * round_, p_high=0.30)
        bounds = plaintext_bounds(rng, len(market.homes))
        for home, (lower, upper) in zip(market.homes, bounds, strict=True):
            band = home.read_price(round_)
            assert (band.p_low, band.p_high) == pytest.approx((0.05 + 0.01 * round_, 0.30))
            home.submit_range(round_, lower, upper)
        assert market.contract.statuses(round_, [0, 1]) == {0: Status.RECOVERY, 1: Status.RECOVERY}
        assert not market.dso.read_aggregate(round_, 0).complete  # self-masks still in
        for home in market.homes:  # every survivor removes its self-mask
            assert home.needs_recovery(round_)
            home.send_recovery(round_)
        for group in (0, 1):
            members = [i for i, g in enumerate(market.groups) if g == group]
            true_lower = sum(bounds[i][0] for i in members)
            true_upper = sum(bounds[i][1] for i in members)
            aggregate = market.dso.read_aggregate(round_, group)
            assert aggregate.complete and aggregate.contributors == len(members)
            assert (aggregate.lower_w, aggregate.upper_w) == (true_lower, true_upper)

            # Anyone else: the public view and the raw storage word hold only masked noise.
            lower_word, upper_word, _, complete = market.contract.call("getAgg", round_, group)
            assert complete
            for word, true in ((lower_word, true_lower), (upper_word, true_upper)):
                assert abs(decode_watts(word) - true) > 2**100
            raw = chain.storage_at(market.contract.address, mapping2_slot("_sums", round_, group))
            raw_lower = int.from_bytes(raw[16:], "big")
            assert abs(decode_watts(raw_lower - 1) - true_lower) > 2**100
        market.dso.post_lambda(round_, 0.25 * round_)
        assert [h.read_lambda(round_) for h in market.homes] == [0.25 * round_] * len(market.homes)


def test_no_plaintext_on_chain_and_words_change_every_round(market: Market) -> None:
    chain = market.chain
    value = (1_234_567, 2_345_678)  # the same bounds every round, for every home
    start_block = chain.w3.eth.block_number
    words = []
    for round_ in (1, 2, 3):
        open_round(market, round_)
        words.append(market.homes[0].masked_range(round_, *value))
        for home in market.homes:
            home.submit_range(round_, *value)
        for home in market.homes:
            home.send_recovery(round_)
    assert len({w for pair in words for w in pair}) == 6

    needles = [v.to_bytes(16, "big") for v in value] + [v.to_bytes(32, "big") for v in value]
    needles += [str(v).encode() for v in value]
    blobs = []
    for number in range(start_block + 1, chain.w3.eth.block_number + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            # eth-tester names the field "data", JSON-RPC nodes "input".
            blobs.append(bytes(tx.get("input", tx.get("data"))))
            receipt = chain.w3.eth.get_transaction_receipt(tx["hash"])
            for log in receipt["logs"]:
                blobs.append(bytes(log["data"]) + b"".join(bytes(t) for t in log["topics"]))
    for round_ in (1, 2, 3):
        for group in (0, 1):
            for label in ("_subs", "_sums", "_recovery", "_bands"):
                blobs.append(
                    chain.storage_at(market.contract.address, mapping2_slot(label, round_, group))
                )
    assert len(blobs) > 3 * len(market.homes)
    for blob in blobs:
        for needle in needles:
            assert needle not in blob


def test_dropout_recovery_gives_exact_survivor_sum(market: Market) -> None:
    rng = random.Random(11)
    open_round(market, 1)
    bounds = plaintext_bounds(rng, len(market.homes))
    dropped = 2  # a member of group 0 (6 homes): 5 survive, the minimum
    for i, home in enumerate(market.homes):
        if i != dropped:
            home.submit_range(1, *bounds[i])
    assert market.contract.status(1, 0) == Status.OPEN
    assert market.contract.status(1, 1) == Status.RECOVERY  # every member submitted
    with pytest.raises(PrivacyError, match="still open"):
        market.homes[0].recovery_request(1)  # group 0's survivors are not fixed yet
    with pytest.raises(ContractRevert, match="AggregatesIncomplete"):
        market.dso.post_lambda(1, 0.5)

    market.chain.advance(DEADLINE_S + 1)
    assert market.contract.status(1, 0) == Status.RECOVERY
    assert not market.dso.read_aggregate(1, 0).complete
    survivors = [h for i, h in enumerate(market.homes) if i != dropped]
    assert not market.homes[dropped].needs_recovery(1)
    with pytest.raises(PrivacyError, match="never reveals its self-mask"):
        market.homes[dropped].recovery_request(1)
    assert all(h.needs_recovery(1) for h in survivors)
    for home in survivors:
        home.send_recovery(1)
    fn = market.contract.web3_contract.functions.recover(1, 0)
    with pytest.raises(ContractRevert, match="RecoveryAlreadySent"):
        market.chain.transact("private.recover", survivors[0].account, fn)
    aggregate = market.dso.read_aggregate(1, 0)
    expected = [bounds[i] for i in range(6) if i != dropped]
    assert aggregate.complete and aggregate.contributors == 5
    assert (aggregate.lower_w, aggregate.upper_w) == (
        sum(b[0] for b in expected),
        sum(b[1] for b in expected),
    )
    market.dso.post_lambda(1, 0.5)


def test_below_minimum_no_correction_and_nothing_revealed(market: Market) -> None:
    open_round(market, 1)
    group1 = market.homes_of(1)  # exactly 5 homes: one dropout leaves 4 < 5
    for home in group1[1:]:
        home.submit_range(1, 1_000, 2_000)
    market.chain.advance(DEADLINE_S + 1)
    assert market.contract.status(1, 1) == Status.FAILED
    # Client side: a survivor refuses to send its recovery word.
    with pytest.raises(PrivacyError, match="fewer than the minimum group size"):
        group1[1].send_recovery(1)
    # Contract side: a recovery sent anyway is refused, and the sum is never revealed.
    fn = market.contract.web3_contract.functions.recover(1, 0)
    with pytest.raises(ContractRevert, match="GroupBelowMinimum"):
        market.chain.transact("private.recover", group1[1].account, fn)
    with pytest.raises(ContractRevert, match="GroupBelowMinimum"):
        market.dso.read_aggregate(1, 1)


def test_survivor_missing_recovery_fails_the_round_once(market: Market) -> None:
    open_round(market, 1)
    group0 = market.homes_of(0)
    for home in group0[:5]:
        home.submit_range(1, 3_000, 4_000)
    market.chain.advance(DEADLINE_S + 1)
    for home in group0[:4]:
        home.send_recovery(1)
    market.chain.advance(market.contract.recovery_period_s + 1)
    assert market.contract.status(1, 0) == Status.FAILED
    with pytest.raises(PrivacyError, match="FAILED"):
        group0[4].send_recovery(1)
    fn = market.contract.web3_contract.functions.recover(1, 0)
    with pytest.raises(ContractRevert, match="RecoveryClosed"):
        market.chain.transact("private.recover", group0[4].account, fn)
    # The round is settled (failed), never re-aggregated over another subset.
    assert not market.dso.read_aggregate(1, 0).complete


def _expect(market: Market, error: str, account, fn) -> None:
    with pytest.raises(ContractRevert) as info:
        market.chain.transact("test", account, fn)
    assert info.value.error == error


def test_every_refusal_is_a_named_custom_error(market: Market) -> None:
    chain, contract, dso = market.chain, market.contract, market.dso
    f = contract.web3_contract.functions
    home = market.homes[0]
    outsider = random_account()
    chain.fund([outsider.address])
    no_attestation = (b"\x00" * 32, b"\x00" * 32)

    _expect(market, "RoundNotOpen", home.account, f.submitRange(9, 1, 2))
    deadline = open_round(market, 1)
    _expect(market, "NotMember", outsider, f.submitRange(1, 1, 2))
    _expect(market, "NotMember", outsider, f.recover(1, 0))
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.submitPrice(2, 0, 1, 2, deadline))
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.submitLambda(1, 1))
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.submitLambdas(1, [1]))
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.setDsoKey(b"\x05" * 32))
    _expect(
        market,
        "OwnableUnauthorizedAccount",
        home.account,
        f.claimUser(outsider.address, 0, b"\x01" * 32, *no_attestation),
    )
    _expect(
        market,
        "AlreadyRegistered",
        dso.account,
        f.claimUser(home.address, 1, b"\x01" * 32, *no_attestation),
    )
    _expect(
        market,
        "ZeroKey",
        dso.account,
        f.claimUser(outsider.address, 1, b"\x00" * 32, *no_attestation),
    )
    _expect(market, "ZeroKey", dso.account, f.setDsoKey(b"\x00" * 32))
    _expect(market, "RoundAlreadyOpen", dso.account, f.submitPrice(1, 0, 1, 2, deadline))
    _expect(market, "BandInverted", dso.account, f.submitPrice(2, 0, 5, 2, deadline))
    _expect(market, "DeadlineNotInFuture", dso.account, f.submitPrice(2, 0, 1, 2, chain.now() - 1))
    _expect(market, "LambdaOutOfRange", dso.account, f.submitLambda(1, 1_000_001))
    _expect(market, "LambdaNotSet", dso.account, f.getLambda(1, 0))
    _expect(market, "NoGroupsInRound", dso.account, f.submitLambda(7, 1))
    _expect(market, "NoGroupsInRound", dso.account, f.submitLambdas(7, [1]))
    _expect(market, "RoundNotOpen", dso.account, f.roundDsoKey(7, 0))
    _expect(market, "RoundNotOpen", dso.account, f.getRecoveries(7, 0))
    _expect(market, "RenounceRefused", dso.account, f.renounceOwnership())
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.renounceOwnership())

    home.submit_range(1, 10, 20)
    _expect(market, "AlreadySubmitted", home.account, f.submitRange(1, 1, 2))
    _expect(market, "AggregatesIncomplete", dso.account, f.submitLambda(1, 500_000))
    _expect(market, "NotInRecovery", home.account, f.recover(1, 0))

    # A home registered after the round opened is not in the round's member set.
    late = random_account()
    chain.fund([late.address])
    dso.register_home(late.address, 1, b"\x02" * 32, no_attestation)
    _expect(market, "NotInRound", late, f.submitRange(1, 1, 2))

    for other in market.homes[1:5]:
        other.submit_range(1, 10, 20)
    chain.advance(DEADLINE_S + 1)
    _expect(market, "DeadlinePassed", market.homes[5].account, f.submitRange(1, 1, 2))
    _expect(market, "DidNotSubmit", market.homes[5].account, f.recover(1, 0))
    home.send_recovery(1)
    _expect(market, "RecoveryAlreadySent", home.account, f.recover(1, 0))

    # A group below the minimum size cannot open a round, nor (once failed) reveal a sum.
    small = setup_market(chain, [3] * 4)
    with pytest.raises(ContractRevert, match="GroupTooSmall"):
        small.dso.open_round(1, 3, 0.1, 0.2, chain.now() + 60)


def test_lambda_once_per_round_single_or_per_group(market: Market) -> None:
    chain, f = market.chain, market.contract.web3_contract.functions
    for round_ in (1, 2):
        open_round(market, round_)
        for home in market.homes:
            home.submit_range(round_, 1, 2)
        for home in market.homes:
            home.send_recovery(round_)
    # round 1: the seed paper's single lambda applies to every group
    market.dso.post_lambda(1, 1.0)
    with pytest.raises(ContractRevert, match="LambdaAlreadySet"):
        market.dso.post_lambda(1, 0.5)
    with pytest.raises(ContractRevert, match="LambdaAlreadySet"):
        market.dso.post_lambdas(1, {0: 0.5, 1: 0.5})
    assert market.contract.lambdas(1, [0, 1]) == {0: 1.0, 1: 1.0}
    # round 2: one lambda per group, packed into one transaction
    with pytest.raises(ValueError, match="opened groups"):
        market.dso.post_lambdas(2, {0: 0.5})
    _expect(market, "LambdaCountMismatch", market.dso.account, f.submitLambdas(2, []))
    _expect(market, "LambdaCountMismatch", market.dso.account, f.submitLambdas(2, [1, 1]))
    _expect(market, "LambdaCountMismatch", market.dso.account, f.submitLambdas(2, [5 << 64]))
    _expect(market, "LambdaOutOfRange", market.dso.account, f.submitLambdas(2, [1_000_001 << 32]))
    market.dso.post_lambdas(2, {1: 0.123456, 0: 0.75})
    assert market.contract.lambdas(2, [0, 1]) == {0: 0.75, 1: 0.123456}
    assert [h.read_lambda(2) for h in market.homes] == [0.75] * 6 + [0.123456] * 5
    _expect(market, "RoundNotOpen", market.dso.account, f.getLambda(2, 9))
    assert chain.records[-1].label == "private.submitLambdas"


def test_packed_lambdas_span_words_in_opening_order(chain: Chain) -> None:
    market = setup_market(chain, [g for g in range(10) for _ in range(2)], min_group_size=2)
    deadline = chain.now() + DEADLINE_S
    opening = [7, 2, 9, 0, 1, 3, 4, 5, 6, 8]
    market.dso.open_rounds(1, {g: (0.1, 0.2) for g in opening}, deadline)
    assert market.contract.call("getRoundGroups", 1) == opening
    for home in market.homes:
        home.submit_range(1, 1, 2)
    chain.transact_many([h.recovery_request(1) for h in market.homes])
    lambdas = {g: g / 10 + 0.01 for g in range(10)}
    market.dso.post_lambdas(1, lambdas)
    assert market.contract.lambdas(1, list(range(10))) == pytest.approx(lambdas, abs=1e-6)


def test_removal_and_key_changes_take_effect_in_later_rounds(market: Market) -> None:
    """The round's member set and DSO key are fixed when it opens: a member removed after that
    still submits, and the DSO's key rotation does not break the open round's unmasking."""
    open_round(market, 1)
    removed = market.homes_of(0)[0]
    market.dso.remove_home(removed.address)
    with pytest.raises(ContractRevert, match="NotMember"):
        market.dso.remove_home(removed.address)
    market.dso.rotate_key(X25519PrivateKey.generate())
    old_key, new_key = market.contract.round_dso_key(1, 0), bytes(market.contract.call("dsoKey"))
    assert old_key != new_key
    for i, home in enumerate(market.homes):
        home.submit_range(1, 100 * i, 200 * i)  # the removed home too: it is in round 1
    for home in market.homes:
        home.send_recovery(1)
    aggregate = market.dso.read_aggregate(1, 0)
    assert aggregate.complete and aggregate.contributors == 6
    assert (aggregate.lower_w, aggregate.upper_w) == (
        sum(100 * i for i in range(6)),
        sum(200 * i for i in range(6)),
    )

    # Round 2 opens without the removed home and with the DSO's new key.
    open_round(market, 2)
    assert market.contract.round_dso_key(2, 0) == new_key
    with pytest.raises(PrivacyError, match="not in the member set of round 2"):
        removed.submit_range(2, 1, 2)
    fn = market.contract.web3_contract.functions.submitRange(2, 1, 2)
    with pytest.raises(ContractRevert, match="NotInRound"):
        market.chain.transact("private.submitRange", removed.account, fn)
    stayers = [h for h in market.homes_of(0) if h is not removed]
    for i, home in enumerate(stayers):
        home.submit_range(2, 100 * i, 200 * i)
    for home in stayers:
        home.send_recovery(2)
    aggregate = market.dso.read_aggregate(2, 0)
    assert aggregate.complete and aggregate.contributors == 5
    assert (aggregate.lower_w, aggregate.upper_w) == (
        sum(100 * i for i in range(5)),
        sum(200 * i for i in range(5)),
    )


def test_masked_words_are_uniform_looking(market: Market) -> None:
    """A crude check that words spread over the whole 128-bit ring (not near the values)."""
    open_round(market, 1)
    words = [w for h in market.homes for w in h.masked_range(1, 500, 600)]
    assert len(set(words)) == len(words)
    assert sum(w >= MODULUS // 2 for w in words) not in (0, len(words))


def test_dso_role_is_transferred_only_by_the_dso_and_never_renounced(market: Market) -> None:
    chain, f = market.chain, market.contract.web3_contract.functions
    new_dso = random_account()
    chain.fund([new_dso.address])
    home = market.homes[0]
    _expect(market, "RenounceRefused", market.dso.account, f.renounceOwnership())
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.transferOwnership(home.address))
    chain.transact(
        "private.transferOwnership", market.dso.account, f.transferOwnership(new_dso.address)
    )
    _expect(market, "OwnableUnauthorizedAccount", home.account, f.acceptOwnership())
    chain.transact("private.acceptOwnership", new_dso, f.acceptOwnership())
    assert market.contract.call("dso") == new_dso.address
    _expect(market, "OwnableUnauthorizedAccount", market.dso.account, f.setDsoKey(b"\x03" * 32))
    _expect(market, "RenounceRefused", new_dso, f.renounceOwnership())
    assert market.contract.call("dso") == new_dso.address
