"""The fast view calls (sim/chain/views.py) answer exactly what web3's contract calls answer,
refusals included, on every backend."""

from __future__ import annotations

import random

import pytest

from sim.chain.connection import Chain, ContractRevert
from sim.chain.deployment import setup_market
from tests.test_chain_protocol import open_round, plaintext_bounds


def _outcome(fn, *args):
    try:
        return ("value", fn(*args))
    except ContractRevert as exc:
        return ("revert", exc.error, exc.args_by_name)


def test_every_view_matches_web3(chain: Chain) -> None:
    market = setup_market(chain, [0] * 5 + [1] * 5)
    contract = market.contract
    open_round(market, 1)
    bounds = plaintext_bounds(random.Random(3), len(market.homes))
    for home, (lower, upper) in zip(market.homes[:5], bounds, strict=False):
        home.submit_range(1, lower, upper)  # group 0 complete, group 1 still open
    home = market.homes[0].address
    calls = [
        ("LAMBDA_SCALE",),
        ("MAX_GROUP_SLOTS",),
        ("dso",),
        ("dsoKey",),
        ("owner",),
        ("pendingOwner",),
        ("minGroupSize",),
        ("recoveryPeriod",),
        ("getMember", home),
        ("pubKeyOf", home),
        ("getGroup", 0),
        ("getGroupSlots", 1),
        ("getRoundGroups", 1),
        ("getPrice", 1, 0),
        ("getPrice", 2, 0),  # a round never opened
        ("getSubmissions", 1, 0),
        ("getSubmissions", 1, 1),
        ("getRecoveries", 1, 0),
        ("getRecoveries", 2, 0),  # a round never opened
        ("roundDsoKey", 1, 0),
        ("registrar",),
        ("attestationOf", home),
        ("getAgg", 1, 0),
        ("getAgg", 1, 1),
        ("status", 1, 0),
        ("status", 1, 1),
        ("getLambda", 1, 0),  # not posted yet
    ]
    reverts = 0
    for name, *args in calls:
        fast = _outcome(contract.call, name, *args)
        slow = _outcome(contract._web3_call, name, *args)
        assert fast == slow, name
        assert type(fast[1]) is type(slow[1]), name
        reverts += fast[0] == "revert"
    assert contract.call("getGroupSlots", 0) == [h.address for h in market.homes[:5]]
    # all at once (one JSON-RPC batch on a node): the same answers, a refusal falls back alone
    plain = [c for c in calls if _outcome(contract.call, *c)[0] == "value"]
    assert contract.call_many(plain) == [contract.call(*c) for c in plain]
    with pytest.raises(ContractRevert):
        contract.call_many([*plain, ("getLambda", 1, 0)])
    assert reverts >= 1 or pytest.fail("no view refused: the refusal path went untested")
