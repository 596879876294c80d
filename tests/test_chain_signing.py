"""The fast chain path (issue 14): native signing, transactions handed to the revm engine as
fields, receipts read from the engine; and the chain id check of the embedded backend.

Every fast step is compared with the reference path it replaces: eth-account's raw bytes, the
engine's decoding of those bytes, web3's receipts, and whole runs on the raw path."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError

from sim.chain.connection import BatchRevert, Chain, TxRequest, connect
from sim.chain.deployment import setup_market
from sim.chain.encoding import keccak256, rlp_list, unsigned_fields
from sim.chain.keys import MarketKeys
from sim.chain.revm.engine import RevmEngine
from sim.chain.revm.provider import RevmProvider
from sim.chain.revm.transactions import (
    RpcError,
    decode_raw_transaction,
    transaction_from_fields,
)
from sim.chain.signing import MAX_FEE_WEI, TIP_WEI, TxSigner
from sim.chain.tester import raw_chain_id
from sim.chain.transport import EngineTransport

T0 = 3_000_000_000
CHAIN_IDS = (1, 1337, 131277322940537)
ADDRESSES = (None, "0x" + "00" * 20, to_checksum_address("0x" + "ab" * 20))
DATA = (b"", b"\x00", b"\x7f", b"\x80", bytes(55), os.urandom(56), os.urandom(1_000),
        os.urandom(70_000))  # fmt: skip


def _cases() -> list[dict[str, Any]]:
    rng = random.Random(5)
    cases = []
    for i in range(60):
        cases.append(
            {
                "key": keccak(text=f"signing/{i}"),
                "chain_id": CHAIN_IDS[i % len(CHAIN_IDS)],
                "nonce": rng.choice([0, 1, 127, 128, 255, 256, 2**32, 2**63]),
                "gas": rng.choice([21_000, 100_000, 30_000_000]),
                "to": ADDRESSES[i % len(ADDRESSES)],
                "data": DATA[i % len(DATA)],
                "value": rng.choice([0, 1, 10**18, 10**27]),
            }
        )
    return cases


def _reference(case: dict[str, Any]) -> Any:
    tx = {
        "chainId": case["chain_id"],
        "nonce": case["nonce"],
        "gas": case["gas"],
        "maxFeePerGas": MAX_FEE_WEI,
        "maxPriorityFeePerGas": TIP_WEI,
        "value": case["value"],
        "data": case["data"],
    }
    if case["to"] is not None:
        tx["to"] = case["to"]
    return Account.from_key(case["key"]).sign_transaction(tx)


def _sign(case: dict[str, Any], native: bool = True):
    signer = TxSigner(None, case["chain_id"], native=native)  # type: ignore[arg-type]
    account = Account.from_key(case["key"])
    return signer.sign(account, case["nonce"], case["to"], case["data"], case["gas"], case["value"])


def test_the_native_signer_gives_eth_accounts_raw_bytes_and_hash() -> None:
    for case in _cases():
        expected = _reference(case)
        signed = _sign(case)
        assert signed.raw == bytes(expected.raw_transaction)
        assert signed.hash == bytes(expected.hash) == keccak(signed.raw)
        assert (signed.y_parity, signed.r, signed.s) == (expected.v, expected.r, expected.s)
        assert signed.sender == Account.from_key(case["key"]).address
        # the reference signer (eth-account behind the same interface) gives the same record
        assert _sign(case, native=False) == signed


def test_the_encoding_is_the_rlp_packages() -> None:
    for case in _cases():
        to = bytes.fromhex(case["to"][2:]) if case["to"] else b""
        fields = [case["chain_id"], case["nonce"], TIP_WEI, MAX_FEE_WEI, case["gas"], to,
                  case["value"], case["data"], []]  # fmt: skip
        assert rlp_list(unsigned_fields(*fields[:8])) == rlp.encode(fields)
    for n in range(300):
        data = os.urandom(n)
        assert keccak256(data) == keccak(data)


def test_fields_handed_to_the_engine_are_checked_as_raw_bytes_are() -> None:
    for case in _cases():
        signed = _sign(case)
        # the same transaction as decoding its raw bytes: hash, recovered sender, every field
        decoded = decode_raw_transaction(signed.raw, case["chain_id"])
        assert transaction_from_fields(signed, case["chain_id"]) == decoded
        assert decoded.sender == signed.sender and decoded.hash == signed.hash
    signed = _sign(_cases()[1])  # chain id 1337
    # nothing the client computed is trusted: altered fields recover another sender
    for change in ({"value": signed.value + 1}, {"nonce": signed.nonce + 1},
                   {"to": "0x" + "11" * 20}, {"data": signed.data + b"\x00"}):  # fmt: skip
        altered = dataclasses.replace(signed, **change)
        assert transaction_from_fields(altered, 1337).sender != signed.sender
    # so the engine takes an altered transaction for one of an unknown, unfunded account
    engine = RevmEngine()
    funded = TxSigner(None, engine.chain_id)  # type: ignore[arg-type]
    dev = engine.dev_accounts[0]
    sent = funded.sign(dev, 0, "0x" + "22" * 20, b"", 21_000, 5)
    with pytest.raises(RpcError, match="insufficient funds"):
        engine.send_fields(dataclasses.replace(sent, value=6))
    assert engine.send_fields(sent) == sent.hash
    assert engine.txs[sent.hash].tx.sender == dev.address
    bad = [
        (dataclasses.replace(signed, chain_id=1), "invalid chain id 1"),
        (dataclasses.replace(signed, s=2**256 - 1), "high s"),
        (dataclasses.replace(signed, r=0), "out of range"),
        (dataclasses.replace(signed, y_parity=2), "invalid transaction signature"),
        (dataclasses.replace(signed, to="0x1234"), "not an address"),
    ]
    for fields, message in bad:
        with pytest.raises(RpcError, match=message):
            transaction_from_fields(fields, 1337)
    with pytest.raises(RpcError, match="invalid chain id 1:"):
        transaction_from_fields(_sign(_cases()[0]), 1337)


def _typed(value: Any) -> Any:
    """A value with the type of every part, to compare receipts exactly (AttributeDict's own
    equality ignores types and key order)."""
    if isinstance(value, Mapping):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__name__, value)


def _revm(fast: bool) -> Chain:
    engine = RevmEngine(genesis_timestamp=T0)  # blocks (and their hashes) the same every run
    return Chain(Web3(RevmProvider(engine)), "revm", fast=fast)


def _workload(chain: Chain) -> list[Any]:
    """Deploy, register, batches with refusals, sequential calls; every receipt in order."""
    # the same keys on both paths, so that both chains hold the same transactions
    keys = MarketKeys.debug_deterministic("fast-path", 11, enabled=True)
    market = setup_market(chain, [0] * 6 + [1] * 5, keys=keys)
    outsider = chain.new_accounts(1, "fast-path-outsider")[0]
    receipts: list[Any] = []
    f = market.contract.web3_contract.functions
    for round_ in (1, 2):
        deadline = chain.now() + 300
        market.dso.open_rounds(round_, {0: (0.08, 0.21), 1: (0.1, 0.3)}, deadline)
        requests = [h.range_request(round_, 10 * i, 10 * i + 7) for i, h in enumerate(market.homes)]
        requests.append(TxRequest("private.submitRange", outsider, f.submitRange(round_, 1, 2)))
        with pytest.raises(BatchRevert, match="NotMember") as info:
            chain.transact_many(requests)
        receipts += info.value.receipts
        chain.transact_many([h.recovery_request(round_) for h in market.homes])
        market.dso.post_lambda(round_, 0.25 * round_)
    receipts += [chain.w3.eth.get_transaction_receipt(r.tx_hash) for r in chain.records]
    return receipts


def test_the_in_process_path_gives_the_chain_of_the_raw_path() -> None:
    fast, reference = _revm(fast=True), _revm(fast=False)
    assert isinstance(fast._transport, EngineTransport)
    assert not isinstance(reference._transport, EngineTransport)
    receipts = _workload(fast)
    assert _typed(receipts) == _typed(_workload(reference))
    assert [dataclasses.replace(r, latency_s=0) for r in fast.records] == [
        dataclasses.replace(r, latency_s=0) for r in reference.records
    ]
    assert fast.w3.eth.block_number == reference.w3.eth.block_number
    numbers = range(fast.w3.eth.block_number + 1)
    blocks = [fast.w3.eth.get_block(n, full_transactions=True) for n in numbers]
    assert _typed(blocks) == _typed(
        [reference.w3.eth.get_block(n, full_transactions=True) for n in numbers]
    )
    assert {r["status"] for r in receipts if r is not None} == {0, 1}
    # every recorded transaction went through the timed steps, on both paths
    assert fast.timings.txs == reference.timings.txs == len(fast.records)
    # two rounds of (prices, submissions, recovery words)
    assert fast.timings.batches == reference.timings.batches == 6


def test_batch_receipts_equal_the_receipts_read_one_by_one() -> None:
    chain = _revm(fast=True)
    receipts = _workload(chain)
    for receipt in receipts:
        if receipt is not None:
            by_web3 = chain.w3.eth.get_transaction_receipt(receipt["transactionHash"])
            assert _typed(receipt) == _typed(by_web3)
    assert any(r is not None and r["logs"] for r in receipts)


@pytest.mark.parametrize("backend", ["embedded", "revm"])
def test_transactions_signed_for_another_chain_are_refused(backend: str) -> None:
    chain = connect(backend)
    sender = chain.new_accounts(1, "other-chains")[0]
    balance = chain.w3.eth.get_balance(sender.address)
    base = {"nonce": 0, "gas": 21_000, "value": 1, "to": "0x" + "22" * 20}
    fees = {"maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}

    def raw(**fields: Any) -> bytes:
        return bytes(sender.sign_transaction({**base, **fields}).raw_transaction)

    refused = [
        (raw(chainId=1, **fees), "invalid chain id 1:"),  # EIP-1559 for mainnet
        (raw(chainId=chain.chain_id + 1, **fees), f"invalid chain id {chain.chain_id + 1}:"),
        (raw(chainId=1, gasPrice=10**9), "invalid chain id 1:"),  # EIP-155 legacy
        (raw(chainId=1, gasPrice=10**9, accessList=[]), "invalid chain id 1:"),  # EIP-2930
        (raw(gasPrice=10**9), "unprotected legacy transaction"),  # no chain id at all
    ]
    for tx, message in refused:
        with pytest.raises(Web3RPCError, match=message):
            chain.w3.eth.send_raw_transaction(tx)
    assert chain.w3.eth.get_transaction_count(sender.address) == 0
    assert chain.w3.eth.get_balance(sender.address) == balance
    accepted = raw(chainId=chain.chain_id, **fees)
    receipt = chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(accepted))
    assert receipt["status"] == 1


def test_the_chain_id_of_a_raw_transaction() -> None:
    for case in _cases()[:6]:
        assert raw_chain_id(bytes(_reference(case).raw_transaction)) == case["chain_id"]
    account = Account.from_key(keccak(text="legacy"))
    legacy = {"nonce": 0, "gas": 21_000, "value": 1, "to": "0x" + "22" * 20, "gasPrice": 1}
    assert raw_chain_id(bytes(account.sign_transaction(legacy).raw_transaction)) is None
    protected = bytes(account.sign_transaction({**legacy, "chainId": 1337}).raw_transaction)
    assert raw_chain_id(protected) == 1337
    with pytest.raises(ValueError, match="not a raw transaction"):
        raw_chain_id(b"\x02\xff")


def test_batched_receipts_from_a_node_are_web3s(revm_node_url: str) -> None:
    """Over JSON-RPC the fast path formats a batch's receipts with web3's formatter itself;
    they are the receipts web3 gives one by one, types included, and those of the reference."""
    results = {}
    for fast in (True, False):
        chain = connect("rpc", revm_node_url, shared=True)
        chain.fast = fast
        market = setup_market(chain, [0] * 5)
        market.dso.open_round(1, 0, 0.08, 0.21, chain.now() + 300)
        receipts = chain.transact_many([h.range_request(1, 3, 4) for h in market.homes])
        one_by_one = [chain.w3.eth.get_transaction_receipt(r["transactionHash"]) for r in receipts]
        assert _typed(receipts) == _typed(one_by_one)
        # (other homes than the reference's, on the same node: their masked words, and so
        # their calldata's zero bytes, differ)
        results[fast] = [(r["status"], len(r["logs"]), sorted(r)) for r in receipts]
    assert results[True] == results[False]
