"""The active attacks of issue 16, scripted against the contract and the clients on every
backend: a DSO that censors a home's submission and reads its word from the mempool, a DSO
that front-runs a submission with removeUser, and a DSO that fills a group with sybils.

Each attack is the arithmetic that worked before the self-mask and the fixed round
membership; each test also runs a control that shows the arithmetic is right (it recovers
the victim's value once the missing secret is handed to it), so the test fails if the
protection goes away."""

from __future__ import annotations

import pytest

from sim.chain.connection import Chain, ContractRevert, TxRequest
from sim.chain.deployment import Market, setup_market
from sim.chain.keys import MarketKeys, PartyKeys, attest
from sim.chain.masking import FIELDS, PrivacyError, decode_watts, unpack_words
from sim.chain.private import HomeClient, Status
from sim.privacy.observers import ChainReader
from tests.test_chain_protocol import DEADLINE_S, open_round

VICTIM_W = (1_234_567, 2_345_678)  # the victim's (lower, upper) bounds


def _values(n: int) -> list[tuple[int, int]]:
    return [(1_000 * (i + 1) - 3_000, 1_500 * (i + 1)) for i in range(n)]


def _recovery_words(market: Market, round_: int, senders: set[str]) -> dict[str, tuple[int, int]]:
    """Every recover call of `round_` as the chain shows it (JSON-RPC blocks and inputs)."""
    reader, contract = ChainReader(market.chain.w3), market.contract.web3_contract
    found = {}
    for number in range(reader.block_number() + 1):
        for tx in reader.block(number)["transactions"]:
            if (tx.get("to") or "").lower() != market.contract.address.lower():
                continue
            fn, args = contract.decode_function_input(tx.get("input", tx.get("data")))
            if fn.fn_name == "recover" and args["round"] == round_ and tx["from"] in senders:
                found[tx["from"]] = unpack_words(args["words"])
    return found


def _dso_mask(market: Market, round_: int, home: HomeClient, field: str) -> int:
    """The victim's home-DSO mask, which the DSO computes with its own key."""
    group, index = home.group, home._membership()[1]
    epoch = market.contract.round_epoch(round_, group)
    return market.dso._unmasker.dso_mask_sum(
        {index: home.public_key},
        market.contract.mask_context(group, epoch),
        round_,
        field,
        market.contract.round_dso_key(round_, group),
    )


@pytest.fixture
def market(chain: Chain) -> Market:
    return setup_market(chain, [0] * 6 + [1] * 5)


def test_censored_submission_stays_masked_and_the_survivors_sum_is_exact(market: Market) -> None:
    """The DSO withholds the victim's submitRange (it produces the blocks) and reads its words
    from the mempool; the survivors' recovery words then cancel the victim's pairwise masks,
    but not its self-mask, which the victim never reveals."""
    chain, group0 = market.chain, market.homes_of(0)
    victim, survivors = group0[2], [h for h in group0 if h is not group0[2]]
    open_round(market, 1)
    request = victim.range_request(1, *VICTIM_W)  # broadcast, never mined
    mempool = dict(zip(FIELDS, request.fn.args[1:], strict=True))
    values = _values(len(survivors))
    for home, v in zip(survivors, values, strict=True):
        home.submit_range(1, *v)
    chain.advance(DEADLINE_S + 1)
    assert market.contract.status(1, 0) == Status.RECOVERY
    assert not victim.needs_recovery(1)  # not a survivor: it sends nothing
    for home in survivors:
        home.send_recovery(1)

    # the DSO still gets the survivors' exact sum
    aggregate = market.dso.read_aggregate(1, 0)
    assert aggregate.complete and aggregate.contributors == 5
    assert (aggregate.lower_w, aggregate.upper_w) == tuple(map(sum, zip(*values, strict=True)))

    # ... and everything on chain, its own key and the sum do not give the victim's bounds
    recoveries = _recovery_words(market, 1, {h.address for h in survivors})
    assert len(recoveries) == 5
    own_sum = market.contract.call("getAgg", 1, 0)[:2]
    for k, field in enumerate(FIELDS):
        word, truth = mempool[field], VICTIM_W[k]
        corrections = sum(r[k] for r in recoveries.values())
        dso_mask = _dso_mask(market, 1, victim, field)
        sum_masks = own_sum[k] - [aggregate.lower_w, aggregate.upper_w][k]
        guesses = [
            word - corrections - dso_mask,  # the attack that worked without self-masks
            word + corrections - dso_mask,
            word - corrections - dso_mask - sum_masks,
            word - corrections - dso_mask + sum_masks,
        ]
        for guess in guesses:
            assert abs(decode_watts(guess) - truth) > 2**100
        # control: with the self-masks (the victim's, never revealed, and the survivors',
        # inside their recovery words) the same arithmetic is exact
        masker = victim._masker(1, 0, market.contract.round_epoch(1, 0))
        self_masks = masker.self_mask(1, field) + sum(
            h._masker(1, 0, market.contract.round_epoch(1, 0)).self_mask(1, field)
            for h in survivors
        )
        assert decode_watts(word - corrections - dso_mask - self_masks) == truth


def test_removal_front_run_no_longer_drops_the_victim(market: Market) -> None:
    """removeUser(victim) lands in the same block just before the victim's submission: the
    submission is still accepted (the round's member set is fixed at opening), so the victim
    is a survivor, no survivor cancels its masks and its value is only in the sum."""
    chain, group0 = market.chain, market.homes_of(0)
    victim, others = group0[0], group0[1:]
    open_round(market, 1)
    f = market.contract.web3_contract.functions
    front_run = TxRequest("private.removeUser", market.dso.account, f.removeUser(victim.address))
    receipts = chain.transact_many([front_run, victim.range_request(1, *VICTIM_W)])
    assert [r["status"] for r in receipts] == [1, 1]
    assert receipts[0]["blockNumber"] <= receipts[1]["blockNumber"]
    values = _values(len(others))
    for home, v in zip(others, values, strict=True):
        home.submit_range(1, *v)
    assert market.contract.status(1, 0) == Status.RECOVERY  # every member submitted
    for home in group0:
        home.send_recovery(1)
    aggregate = market.dso.read_aggregate(1, 0)
    assert aggregate.contributors == 6
    expected = [sum(v[k] for v in values) + VICTIM_W[k] for k in range(2)]
    assert [aggregate.lower_w, aggregate.upper_w] == expected
    # the old arithmetic finds no corrections that cancel the victim's masks
    recoveries = _recovery_words(market, 1, {h.address for h in others})
    word = receipts[1]  # the victim's mined submission
    tx = chain.w3.eth.get_transaction(word["transactionHash"])
    _, args = market.contract.web3_contract.decode_function_input(tx["input"])
    for k, field in enumerate(FIELDS):
        submitted = [args["maskedLower"], args["maskedUpper"]][k]
        corrections = sum(r[k] for r in recoveries.values())
        guess = submitted - corrections - _dso_mask(market, 1, victim, field)
        assert abs(decode_watts(guess) - VICTIM_W[k]) > 2**100
    # the removal takes effect in the next round: the victim's client refuses it, the
    # contract too, and nothing of the victim reaches the chain there
    open_round(market, 2)
    with pytest.raises(PrivacyError, match="not in the member set of round 2"):
        victim.range_request(2, *VICTIM_W)
    with pytest.raises(ContractRevert, match="NotInRound"):
        chain.transact("private.submitRange", victim.account, f.submitRange(2, 1, 2))


def test_a_group_with_sybil_members_is_refused_by_honest_homes(chain: Chain) -> None:
    """One honest home plus four DSO accounts would meet the minimum group size of 5 and the
    'group sum' would be the honest home's bounds. The sybils have no valid attestation of
    the registrar: forged by the DSO's own key, missing, or a real attestation of another
    group; the honest home refuses the group, naming them."""
    keys = MarketKeys.random(1)
    market = setup_market(chain, [0], min_group_size=5, keys=keys)
    honest = market.homes[0]
    sybils = [PartyKeys.random() for _ in range(4)]
    registrar, contract = market.keys.registrar, market.contract
    forged = attest(
        market.dso.account,
        chain.chain_id,
        contract.address,
        sybils[0].address,
        0,
        sybils[0].public_key,
    )
    other_group = attest(
        registrar, chain.chain_id, contract.address, sybils[1].address, 7, sybils[1].public_key
    )
    other_key = attest(
        registrar, chain.chain_id, contract.address, sybils[2].address, 0, b"\x09" * 32
    )
    attestations = [forged, other_group, other_key, (b"\x00" * 32, b"\x00" * 32)]
    for sybil, attestation in zip(sybils, attestations, strict=True):
        market.dso.register_home(sybil.address, 0, sybil.public_key, attestation)
    open_round(market, 1)
    with pytest.raises(PrivacyError, match="without a valid attestation") as refused:
        honest.range_request(1, *VICTIM_W)
    for sybil in sybils:
        assert sybil.address in str(refused.value)
    assert contract.submissions(1, 0).count == 0  # nothing of the honest home on chain

    # control: the same group with four attested members is accepted
    market2 = setup_market(chain, [0] * 5, min_group_size=5)
    open_round(market2, 1)
    market2.homes[0].range_request(1, *VICTIM_W)


def test_a_home_refuses_a_contract_with_another_registrar(market: Market) -> None:
    with pytest.raises(PrivacyError, match="not .* the one this home trusts"):
        HomeClient(market.contract, PartyKeys.random(), market.dso.account.address)
    assert market.contract.registrar == market.registrar
