"""Batched submission (`Chain.transact_many`) on every backend: records, blocks, refusals."""

from __future__ import annotations

import random

import pytest

from sim.chain.connection import BatchRevert, Chain, ContractRevert, TxRequest, connect
from sim.chain.deployment import Market, setup_market
from sim.chain.private import Status

DEADLINE_S = 300


def open_round(market: Market, round_: int) -> None:
    deadline = market.chain.now() + DEADLINE_S
    for group in sorted(set(market.groups)):
        market.dso.open_round(round_, group, 0.08, 0.21, deadline)


def bounds(seed: int, n: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lower = rng.randrange(-4_000, 6_000)
        out.append((lower, lower + rng.randrange(0, 3_000)))
    return out


def batch_round(market: Market, round_: int, values: list[tuple[int, int]]) -> list[dict | None]:
    open_round(market, round_)
    requests = [h.range_request(round_, *v) for h, v in zip(market.homes, values, strict=True)]
    return market.chain.transact_many(requests)


def test_batch_records_every_transaction_and_sums_are_exact(chain: Chain) -> None:
    market = setup_market(chain, [0] * 6 + [1] * 5)
    values = bounds(3, len(market.homes))
    before = len(chain.records)
    receipts = batch_round(market, 1, values)

    assert [r["status"] for r in receipts] == [1] * len(market.homes)
    new = chain.records[before + 2 :]  # after the two submitPrice transactions
    assert [r.label for r in new] == ["private.submitRange"] * len(market.homes)
    assert [r.sender for r in new] == [h.address for h in market.homes]
    assert {r.round for r in new} == {1} and {r.status for r in new} == {1}
    assert [r.tx_hash for r in new] == [r["transactionHash"].hex() for r in receipts]
    assert all(r.gas_used == rc["gasUsed"] > 30_000 for r, rc in zip(new, receipts, strict=True))
    # latency is the batch's wall time shared out equally
    assert len({r.latency_s for r in new}) == 1 and new[0].latency_s > 0
    blocks = {r.block for r in new}
    if chain.backend == "embedded":  # eth-tester auto-mines each transaction
        assert len(blocks) == len(market.homes)
    else:  # revm and hardhat: auto-mining off for the batch, one block
        assert len(blocks) == 1

    assert not market.dso.read_aggregate(1, 0).complete  # the self-masks are still in
    recoveries = market.chain.transact_many([h.recovery_request(1) for h in market.homes])
    assert [r["status"] for r in recoveries] == [1] * len(market.homes)
    for group in (0, 1):
        members = [i for i, g in enumerate(market.groups) if g == group]
        aggregate = market.dso.read_aggregate(1, group)
        assert aggregate.complete and aggregate.contributors == len(members)
        assert (aggregate.lower_w, aggregate.upper_w) == (
            sum(values[i][0] for i in members),
            sum(values[i][1] for i in members),
        )
    # auto-mining is back on: a plain transaction is mined at once
    market.dso.post_lambda(1, 0.5)
    assert market.homes[0].read_lambda(1) == 0.5


def test_refusals_in_a_batch_are_named_and_the_rest_goes_through(chain: Chain) -> None:
    market = setup_market(chain, [0] * 6)
    homes = market.homes
    outsider = chain.new_accounts(1, "batch-outsider")[0]
    open_round(market, 1)
    homes[0].submit_range(1, 10, 20)  # sequential: estimates the label's gas limit too
    f = market.contract.web3_contract.functions
    before = len(chain.records)
    batch = [
        homes[1].range_request(1, 11, 21),
        TxRequest("private.submitRange", homes[0].account, f.submitRange(1, 5, 6), 1),
        homes[2].range_request(1, 12, 22),
        TxRequest("private.submitRange", outsider, f.submitRange(1, 5, 6), 1),
        homes[3].range_request(1, 13, 23),
    ]
    with pytest.raises(ContractRevert, match="AlreadySubmitted") as info:
        chain.transact_many(batch)
    refusal = info.value
    assert isinstance(refusal, BatchRevert)
    assert [(i, r.error) for i, r in refusal.failures] == [
        (1, "AlreadySubmitted"),
        (3, "NotMember"),
    ]
    assert refusal.failures[1][1].args_by_name == {"account": outsider.address.lower()}
    assert [r["status"] for r in refusal.receipts] == [1, 0, 1, 0, 1]
    # every mined transaction is recorded, the refused ones with status 0 and their gas
    new = chain.records[before:]
    assert [r.status for r in new] == [1, 0, 1, 0, 1]
    assert all(r.gas_used > 21_000 for r in new)
    subs = market.contract.submissions(1, 0)
    assert subs.count == 4 and [subs.submitted(i) for i in range(6)] == [True] * 4 + [False] * 2

    # Nonces stay right after refusals, mined or not: the same accounts keep transacting.
    homes[4].submit_range(1, 14, 24)
    homes[5].submit_range(1, 15, 25)
    assert market.contract.status(1, 0) == Status.RECOVERY
    chain.transact_many([h.recovery_request(1) for h in homes])
    assert market.contract.status(1, 0) == Status.COMPLETE
    assert market.dso.read_aggregate(1, 0).lower_w == sum(range(10, 16))
    open_round(market, 2)
    homes[0].submit_range(2, 1, 2)


def test_a_refused_gas_estimate_is_not_sent(chain: Chain) -> None:
    market = setup_market(chain, [0] * 5)
    f = market.contract.web3_contract.functions
    dso = market.dso.account
    open_round(market, 1)
    before = len(chain.records)
    # A label without a cached gas limit is estimated from its first request; the estimate of
    # a refused call fails, so that request is never sent and the next one is estimated.
    batch = [
        TxRequest("test.submitLambda", dso, f.submitLambda(1, 2_000_000), 1),
        TxRequest("test.submitPrice", dso, f.submitPrice(2, 0, 10, 20, chain.now() + 600), 2),
    ]
    with pytest.raises(BatchRevert, match="LambdaOutOfRange") as info:
        chain.transact_many(batch)
    assert info.value.receipts[0] is None and info.value.receipts[1]["status"] == 1
    assert [r.label for r in chain.records[before:]] == ["test.submitPrice"]
    assert market.contract.status(2, 0) == Status.OPEN
    assert chain.transact_many([]) == []


def test_batch_gives_the_same_sums_and_gas_on_revm_as_on_eth_tester() -> None:
    results = {}
    for backend in ("embedded", "revm"):
        chain = connect(backend)
        market = setup_market(chain, [0] * 5 + [1] * 5)
        values = bounds(9, len(market.homes))
        batch_round(market, 1, values)
        chain.transact_many([h.recovery_request(1) for h in market.homes])
        sums = [market.dso.read_aggregate(1, g) for g in (0, 1)]
        # (the masked words' gas depends on their zero bytes, which differ with random keys)
        gas = [r.gas_used for r in chain.records if r.label == "private.submitPrice"]
        results[backend] = ([(a.lower_w, a.upper_w, a.contributors) for a in sums], gas)
    assert results["embedded"] == results["revm"]


def test_open_rounds_posts_every_band_in_one_batch(chain: Chain) -> None:
    """The DSO's prices for all groups: the same bands and gas as one transaction per group,
    in one block where the backend lets the client mine."""
    market = setup_market(chain, [0] * 5 + [1] * 5 + [2] * 5)
    deadline = chain.now() + DEADLINE_S
    bands = {0: (0.08, 0.21), 1: (-0.5, 0.3), 2: (0.1, 4.2)}
    before = len(chain.records)
    market.dso.open_rounds(1, bands, deadline)
    batched = chain.records[before:]
    for group in bands:  # the same calls one by one, in round 2
        market.dso.open_round(2, group, *bands[group], deadline)
    single = chain.records[before + len(bands) :]

    assert [r.label for r in batched] == ["private.submitPrice"] * 3
    assert [r.gas_used for r in batched] == [r.gas_used for r in single]
    for group, (p_low, p_high) in bands.items():
        band = market.contract.price_band(1, group)
        assert (band.p_low, band.p_high, band.deadline) == (p_low, p_high, deadline)
    if chain.backend != "embedded":
        assert len({r.block for r in batched}) == 1
