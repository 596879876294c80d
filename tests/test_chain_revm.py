"""The revm backend: gas equal to py-evm and hardhat, transaction checks, fees, blocks, logs."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, Web3RPCError

from sim.chain.artifacts import load_artifact
from sim.chain.connection import Chain, ChainError, connect
from sim.chain.deployment import setup_market
from sim.chain.revm.provider import CHAIN_ID, RevmEngine, RevmProvider, RpcError

T0 = 3_000_000_000  # a fixed chain time (year 2065), ahead of every backend's clock
GWEI = 10**9
# Fixed masked words (some with zero bytes): identical calldata on every backend, so that gas
# differences can only come from execution.
WORDS = [
    (2**127 + 12345, 2**120 + 7),
    (1, 2**128 - 1),
    (0xDEADBEEF << 64, 0x00FF00FF00FF),
    (2**100, 2**64 + 1),
    (987654321, 123456789012345678901234567890),
    (2**128 - 2, 3),
]


def _scripted_gas(chain: Chain, reads: bool = False) -> list[tuple[str, int]]:
    """Two rounds of the protocol with fixed calldata; (label, gas) of every transaction.

    Round 1 fills empty storage (zero to non-zero SSTOREs), round 2 writes slots that already
    hold values, has a dropout and the recovery phase (recovery words), so the warm/cold and
    original-value rules of EIP-2929/2200/3529 are all exercised. With `reads`, storage,
    balances and code are read between transactions (they must not warm anything).
    """
    dso, *homes = chain.new_accounts(7, "gas-equality")
    art = load_artifact("PrivateAggregation")
    factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    chain.set_time(T0)
    registrar = "0x" + "22" * 20  # attestations are not checked on chain
    contract = chain.deploy("deploy", dso, factory, dso.address, b"\x11" * 32, registrar, 5, 120)
    f = contract.functions

    def read() -> None:
        if reads:
            for slot in range(8):
                chain.storage_at(contract.address, slot)
            chain.w3.eth.get_balance(homes[0].address)
            chain.w3.eth.get_code(contract.address)
            chain.w3.eth.get_transaction_count(dso.address)

    for i, home in enumerate(homes):
        attestation = bytes([i + 3]) * 32, bytes([i + 4]) * 32
        chain.transact(
            "claimUser", dso, f.claimUser(home.address, 0, bytes([i + 1]) * 32, *attestation)
        )
        read()
    chain.transact("submitPrice", dso, f.submitPrice(1, 0, 80_000, 210_000, T0 + 1_000))
    for home, words in zip(homes, WORDS, strict=True):
        read()
        chain.transact("submitRange", home, f.submitRange(1, *words))
    for home, words in zip(homes, WORDS, strict=True):  # survivors fixed: all submitted
        chain.transact("recover", home, f.recover(1, words[0] << 128 | words[1]))
        read()
    chain.transact("submitLambda", dso, f.submitLambda(1, 500_000))
    chain.transact("submitPrice", dso, f.submitPrice(2, 0, 70_000, 250_000, T0 + 2_000))
    for home, words in zip(homes[:5], WORDS[1:], strict=True):
        chain.transact("submitRange", home, f.submitRange(2, *words))
        read()
    chain.set_time(T0 + 2_002)  # (eth-tester: the latest block then stands 1 s earlier)
    for home, words in zip(homes[:5], WORDS[:5], strict=True):
        chain.transact("recover", home, f.recover(2, words[1] << 128 | words[0]))
    chain.transact("submitLambdas", dso, f.submitLambdas(2, [250_000]))
    chain.transact("transferOwnership", dso, f.transferOwnership(homes[0].address))
    return [(r.label, r.gas_used) for r in chain.records]


@pytest.fixture(params=["embedded", pytest.param("hardhat", marks=pytest.mark.node)])
def reference(request) -> Chain:
    if request.param == "hardhat":
        return connect("rpc", request.getfixturevalue("hardhat_url"))
    return connect("embedded")


def test_gas_equals_py_evm_and_hardhat_for_every_call(reference: Chain) -> None:
    revm = _scripted_gas(connect("revm"))
    assert revm == _scripted_gas(reference)
    labels = {label for label, _ in revm}
    assert {"submitRange", "submitPrice", "submitLambda", "submitLambdas", "recover"} <= labels


def test_reads_between_transactions_change_no_gas() -> None:
    assert _scripted_gas(connect("revm"), reads=True) == _scripted_gas(connect("revm"))


def _signed(account, **fields) -> bytes:
    tx = {"chainId": CHAIN_ID, "gas": 21_000, "value": 1, "to": "0x" + "22" * 20}
    tx.update(fields)
    if "gasPrice" not in tx:
        tx.setdefault("maxFeePerGas", 2 * GWEI)
        tx.setdefault("maxPriorityFeePerGas", GWEI)
    return bytes(account.sign_transaction(tx).raw_transaction)


def test_raw_transactions_are_checked_like_a_node() -> None:
    chain = connect("revm")
    w3 = chain.w3
    sender, poor = chain.new_accounts(1, "checks")[0], Account.from_key(keccak(text="poor"))
    send = w3.eth.send_raw_transaction
    receipt = w3.eth.wait_for_transaction_receipt(send(_signed(sender, nonce=0)))
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert w3.eth.get_transaction(receipt["transactionHash"])["from"] == sender.address

    cases = [
        (_signed(sender, nonce=0, value=2), "nonce too low"),
        (_signed(sender, nonce=5), "nonce too high"),
        (_signed(sender, nonce=1, chainId=CHAIN_ID + 1), "invalid chain id"),
        (_signed(poor, nonce=0), "insufficient funds"),
        (_signed(sender, nonce=1, data=b"\x01" * 10), "intrinsic gas too low"),
        (_signed(sender, nonce=1, maxPriorityFeePerGas=3 * GWEI), "higher than max fee"),
        (_signed(sender, nonce=1, accessList=[{"address": sender.address, "storageKeys": []}]),
         "access list"),
        (_signed(sender, nonce=1, gasPrice=GWEI, chainId=None), "unprotected"),
        (b"\x04\xc0", "type 4 is not supported"),
        (_signed(sender, nonce=1, to=None, data=b"\x01" * 49_153, gas=900_000), "initcode"),
    ]  # fmt: skip
    for raw, message in cases:
        with pytest.raises(Web3RPCError, match=message):
            send(raw)
    # EIP-155 legacy and EIP-2930 transactions are accepted (without access-list entries)
    send(_signed(sender, nonce=1, gasPrice=GWEI))
    send(_signed(sender, nonce=2, gasPrice=GWEI, accessList=[]))
    with pytest.raises(Web3RPCError, match="already known"):
        send(_signed(sender, nonce=2, gasPrice=GWEI, accessList=[]))
    assert w3.eth.get_transaction_count(sender.address) == 3


def test_value_transfers_charge_the_sender_its_fee() -> None:
    chain = connect("revm")
    w3 = chain.w3
    alice, bob = chain.new_accounts(2, "fees")
    before_a, before_b = w3.eth.get_balance(alice.address), w3.eth.get_balance(bob.address)
    assert before_a == before_b == 10 * 10**18
    raw = _signed(alice, nonce=0, to=bob.address, value=12345, maxPriorityFeePerGas=3 * GWEI,
                  maxFeePerGas=5 * GWEI)  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert receipt["effectiveGasPrice"] == 3 * GWEI  # base fee 0: the tip
    assert w3.eth.get_balance(bob.address) == before_b + 12345
    assert w3.eth.get_balance(alice.address) == before_a - 12345 - 21_000 * 3 * GWEI
    assert w3.eth.get_block("latest")["baseFeePerGas"] == 0


def test_blocks_follow_set_time_and_auto_mining() -> None:
    chain = connect("revm")
    market = setup_market(chain, [0] * 5)
    chain.set_time(T0)
    start = chain.w3.eth.get_block("latest")
    assert start["timestamp"] == T0
    market.dso.open_round(1, 0, 0.1, 0.2, T0 + 300)
    market.homes[0].submit_range(1, 1, 2)
    latest = chain.w3.eth.get_block("latest", full_transactions=True)
    # one block per transaction under auto-mine, each one second after its parent
    assert latest["number"] == start["number"] + 2 and latest["timestamp"] == T0 + 2
    assert latest["parentHash"] == chain.w3.eth.get_block(start["number"] + 1)["hash"]
    (tx,) = latest["transactions"]
    assert tx["from"] == market.homes[0].address and len(tx["input"]) == 4 + 3 * 32
    assert chain.w3.eth.get_block(latest["hash"])["number"] == latest["number"]

    response = chain.w3.provider.make_request("evm_mine", [T0])
    assert "not after the latest block" in response["error"]["message"]
    with pytest.raises(ChainError, match="evm_mine"):
        chain._rpc("evm_mine", [T0])


def test_eth_call_reverts_carry_the_custom_error_bytes() -> None:
    chain = connect("revm")
    market = setup_market(chain, [0] * 5)
    fn = market.contract.web3_contract.functions.submitRange(1, 1, 2)
    with pytest.raises(ContractCustomError) as info:
        fn.call({"from": market.homes[0].address})
    selector = keccak(text="RoundNotOpen(uint64,uint64)")[:4]
    assert bytes.fromhex(info.value.data[2:]).startswith(selector)
    with pytest.raises(ContractCustomError):
        fn.estimate_gas({"from": market.homes[0].address})


def test_logs_are_filtered_by_block_address_and_topic() -> None:
    chain = connect("revm")
    market = setup_market(chain, [0] * 5)
    first = chain.w3.eth.block_number + 1
    market.dso.open_round(1, 0, 0.1, 0.2, chain.now() + 300)
    chain.transact_many([h.range_request(1, 10, 20) for h in market.homes])
    chain.transact_many([h.recovery_request(1) for h in market.homes])
    events = market.contract.web3_contract.events
    ready = events.AggregateReady().get_logs(from_block=first)
    assert len(ready) == 1 and ready[0]["args"]["contributors"] == 5
    ranges = events.RangeSubmitted().get_logs(from_block=first)
    assert [e["args"]["home"] for e in ranges] == [h.address for h in market.homes]
    assert len({e["blockNumber"] for e in ranges}) == 1  # the batch's one block
    assert ready[0]["blockNumber"] == ranges[0]["blockNumber"] + 1  # the recoveries' block
    topic = "0x" + keccak(text="RangeSubmitted(uint64,uint64,address)").hex()
    raw = chain.w3.eth.get_logs(
        {"fromBlock": first, "address": market.contract.address, "topics": [topic, None, None]}
    )
    assert len(raw) == 5
    assert chain.w3.eth.get_logs({"fromBlock": first, "address": "0x" + "33" * 20}) == []
    receipt = chain.w3.eth.get_transaction_receipt(ranges[0]["transactionHash"])
    assert int.from_bytes(receipt["logsBloom"], "big") != 0


def test_a_batch_over_the_block_gas_limit_spans_several_blocks() -> None:
    # the deployment needs a 3.65 M gas limit; 100 submissions use about 3.9 M gas
    chain = Chain(Web3(RevmProvider(RevmEngine(block_gas_limit=3_700_000))), "revm")
    market = setup_market(chain, [0] * 100)
    funding = {chain.w3.eth.get_balance(h.address) for h in market.homes}
    assert funding == {10 * 10**18}
    market.dso.open_round(1, 0, 0.1, 0.2, chain.now() + 300)
    before = len(chain.records)
    receipts = chain.transact_many([h.range_request(1, 10, 20) for h in market.homes])
    assert all(r["status"] == 1 for r in receipts)
    blocks = [r.block for r in chain.records[before:]]
    assert len(set(blocks)) == 2 and blocks == sorted(blocks)
    chain.transact_many([h.recovery_request(1) for h in market.homes])
    assert market.dso.read_aggregate(1, 0).lower_w == 1_000


def test_a_transaction_the_evm_refuses_when_mined_is_dropped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = RevmEngine()
    chain = Chain(Web3(RevmProvider(engine)), "revm")
    sender = chain.new_accounts(1, "dropped")[0]
    execute = engine._execute

    def refuse_once(*args, **kwargs):
        monkeypatch.setattr(engine, "_execute", execute)
        raise RpcError(-32000, "transaction refused by the EVM: test")

    monkeypatch.setattr(engine, "_execute", refuse_once)
    chain._rpc("evm_setAutomine", [False])
    first = chain.w3.eth.send_raw_transaction(_signed(sender, nonce=0))
    second = chain.w3.eth.send_raw_transaction(_signed(sender, nonce=1))
    chain._rpc("evm_mine", [])
    with pytest.raises(Web3RPCError, match="dropped, not mined: transaction refused by the EVM"):
        chain.w3.eth.get_transaction_receipt(first)
    with pytest.raises(Web3RPCError, match="dropped, not mined: no longer valid when mined"):
        chain.w3.eth.get_transaction_receipt(second)
    assert chain.w3.eth.get_transaction_count(sender.address) == 0
    chain._rpc("evm_setAutomine", [True])
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(_signed(sender, nonce=0, value=3))
    )
    assert receipt["status"] == 1


def test_only_the_latest_state_and_known_methods_are_served() -> None:
    chain = connect("revm")
    home = chain.new_accounts(1, "history")[0]
    assert chain.w3.eth.block_number >= 1
    with pytest.raises(Web3RPCError, match="keeps only the latest state"):
        chain.w3.eth.get_balance(home.address, block_identifier=0)
    response = chain.w3.provider.make_request("eth_getProof", [home.address, [], "latest"])
    assert "not supported by the revm backend" in response["error"]["message"]
    response = chain.w3.provider.make_request("eth_getBalance", [])
    assert response["error"]["code"] == -32602
