"""The seed paper's contract as published: same flow, plaintext visible in calldata."""

from __future__ import annotations

import pytest

from sim.chain.baseline import SeedBaselineClient
from sim.chain.connection import Chain, ContractRevert


def test_seed_flow_sums_on_chain_and_exposes_plaintext(chain: Chain) -> None:
    dso, *homes = chain.new_accounts(4, "seed")
    contract = SeedBaselineClient.deploy(chain, dso)
    contract.claim_dso(dso)
    for home in homes:
        contract.claim_user(home, home.address)
    bounds = [(9, 10), (-1500, 2500), (4000, 4001)]
    for round_ in (1, 2):
        contract.submit_price(dso, 0.21, 0.08, round_=round_)
        assert contract.get_price() == pytest.approx((0.21, 0.08))
        for home, (lower, upper) in zip(homes, bounds, strict=True):
            contract.submit_range(home, lower, upper, round_=round_)
        assert contract.get_agg(dso, round_=round_) == (2509, 6511)
        contract.submit_lambda(dso, 0.4, round_=round_)
        assert contract.get_lambda() == pytest.approx(0.4)
        contract.clear(dso, round_=round_)
        assert contract.get_price() == (0.0, 0.0)

    # The paper's Table I: the forecast "9,10" sits in the transaction input in clear.
    submissions = [r for r in chain.records if r.label == "baseline.submitRange"]
    assert len(submissions) == 6
    tx = chain.w3.eth.get_transaction(submissions[0].tx_hash)
    assert b"9,10" in bytes(tx.get("input", tx.get("data")))


def test_seed_refusals(chain: Chain) -> None:
    dso, home, intruder = chain.new_accounts(3, "seed-refusals")
    contract = SeedBaselineClient.deploy(chain, dso)
    contract.claim_dso(dso)
    with pytest.raises(ContractRevert, match="DsoAlreadyClaimed"):
        contract.claim_dso(intruder)
    with pytest.raises(ContractRevert, match="NotUser"):
        contract.submit_range(home, 1, 2)
    contract.claim_user(dso, home.address)
    with pytest.raises(ContractRevert, match="NotDSO"):
        contract.submit_lambda(home, 0.5)
    contract.submit_range(home, 1, 2)
    with pytest.raises(ContractRevert, match="AlreadySubmitted"):
        contract.submit_range(home, 1, 2)
    # A malformed plaintext string breaks the on-chain sum for everybody.
    other = chain.new_accounts(1, "seed-other")[0]
    contract.claim_user(dso, other.address)
    chain.transact(
        "baseline.submitRange", other, contract.web3_contract.functions.submitRange("12;13")
    )
    with pytest.raises(ContractRevert, match="MalformedRange"):
        contract.get_agg(dso)
