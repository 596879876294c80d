"""The revm chain served over JSON-RPC (sim/chain/revm/node.py), node processes (sim/chain/node.py)
and several OS processes sharing one node (`connect("rpc", url, shared=True)`)."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import queue
import sys
import traceback
import urllib.request
from typing import Any

import pytest
from web3 import HTTPProvider
from web3.exceptions import TransactionNotFound

from sim.chain.connection import Chain, ChainError, TxRequest, chain_lock_path, connect
from sim.chain.deployment import attach_homes, setup_market
from sim.chain.keys import PartyKeys
from sim.chain.node import RevmNode, start_node
from sim.chain.revm.node import main as revm_node_main
from sim.chain.signing import TxSigner
from tests.test_chain_batch import open_round
from tests.test_chain_batch import (
    test_batch_records_every_transaction_and_sums_are_exact as check_batch_records,
)
from tests.test_chain_batch import (
    test_refusals_in_a_batch_are_named_and_the_rest_goes_through as check_batch_refusals,
)
from tests.test_chain_revm import _scripted_gas, _signed

SHARDS = 2
SHARD_HOMES = 20  # homes per process, in groups of 5
ROUNDS = 3


# ---------------------------------------------------------------------------- the revm node


def test_the_revm_node_gives_the_gas_of_in_process_revm() -> None:
    # A node of its own: the script places blocks at fixed chain times.
    with start_node("revm") as node:
        over_rpc = _scripted_gas(connect("rpc", node.url, shared=True))
    assert over_rpc == _scripted_gas(connect("revm"))


def test_batches_through_the_node_behave_as_in_process(revm_node_url: str) -> None:
    # test_chain_batch's checks (one block per batch, records, sums, decoded refusals, nonces
    # after refusals) on a shared connection to the node
    check_batch_records(connect("rpc", revm_node_url, shared=True))
    check_batch_refusals(connect("rpc", revm_node_url, shared=True))


def test_batched_receipts_are_the_receipts_read_one_by_one(revm_node_url: str) -> None:
    chain = connect("rpc", revm_node_url, shared=True)
    market = setup_market(chain, [0] * 5)
    open_round(market, 1)
    receipts = chain.transact_many(
        [h.range_request(1, i, 2 * i) for i, h in enumerate(market.homes)]
    )
    assert all(r is not None and len(r["logs"]) >= 1 for r in receipts)
    assert receipts == [
        chain.w3.eth.get_transaction_receipt(r["transactionHash"]) for r in receipts
    ]


@pytest.fixture(
    params=["embedded", "revm", "revm-node", pytest.param("hardhat", marks=pytest.mark.node)]
)
def any_chain(request) -> Chain:
    """In-process chains, and nodes opened as processes sharing them do."""
    if request.param in ("revm-node", "hardhat"):
        fixture = "revm_node_url" if request.param == "revm-node" else "hardhat_url"
        return connect("rpc", request.getfixturevalue(fixture), shared=True)
    return connect(request.param)


def test_a_send_the_node_refuses_frees_its_nonce_for_the_senders_next(any_chain: Chain) -> None:
    chain = any_chain
    market = setup_market(chain, [0] * 5)
    open_round(market, 1)
    first, second = market.homes[:2]
    submission = first.range_request(1, 10, 20)
    # A gas limit under the call's intrinsic gas: the node refuses the transaction on arrival
    # (never mined), so the sender's next transaction, signed with the nonce after it, is
    # signed again with the nonce it left unused.
    chain._gas_limits["test.lowGas"] = 21_000
    batch = [
        TxRequest("test.lowGas", first.account, submission.fn, 1),
        submission,
        second.range_request(1, 11, 21),
    ]
    with pytest.raises(ChainError, match="refused 1 transactions of the batch: test.lowGas"):
        chain.transact_many(batch)
    subs = market.contract.submissions(1, 0)
    assert subs.count == 2 and subs.submitted(0) and subs.submitted(1)
    assert [r.label for r in chain.records[-2:]] == ["private.submitRange"] * 2
    # the nonce cache is still right for both senders
    open_round(market, 2)
    chain.transact_many([first.range_request(2, 1, 2), second.range_request(2, 3, 4)])
    assert market.contract.submissions(2, 0).count == 2


def test_chain_time_and_mining_are_controlled_through_the_node(revm_node_url: str) -> None:
    chain = connect("rpc", revm_node_url)
    w3 = chain.w3
    target = chain.now() + 1_000
    chain.set_time(target)
    assert chain.now() == w3.eth.get_block("latest")["timestamp"] == target
    sender = chain.new_accounts(1, "node-mining")[0]  # funded in one block, at target + 1

    chain._rpc("evm_setAutomine", [False])
    try:
        first = w3.eth.send_raw_transaction(_signed(sender, nonce=0))
        with pytest.raises(TransactionNotFound):  # queued until mined
            w3.eth.get_transaction_receipt(first)
        chain._rpc("evm_mine", [target + 60])
    finally:
        chain._rpc("evm_setAutomine", [True])
    receipt = w3.eth.get_transaction_receipt(first)
    block = w3.eth.get_block(receipt["blockNumber"])
    assert block["timestamp"] == target + 60 and block["transactions"] == [first]
    # auto-mining is back on: mined at once, one second after its parent
    second = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(_signed(sender, nonce=1))
    )
    assert second["blockNumber"] == receipt["blockNumber"] + 1
    assert w3.eth.get_block(second["blockNumber"])["timestamp"] == target + 61
    assert w3.eth.get_transaction(first)["from"] == sender.address
    with pytest.raises(ChainError, match="not after the latest block"):
        chain._rpc("evm_mine", [target])


def _post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_the_node_answers_batches_and_malformed_requests(revm_node_url: str) -> None:
    chain = connect("rpc", revm_node_url)
    number = chain.w3.eth.block_number
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 7, "method": "eth_getProof", "params": []},
        {"jsonrpc": "2.0", "id": 8, "method": "eth_chainId"},  # params may be left out
        5,
    ]
    answers = _post(revm_node_url, json.dumps(batch).encode())
    assert [a["id"] for a in answers] == ["a", 7, 8, None]
    assert answers[0]["result"] == hex(number) and answers[2]["result"] == hex(chain.chain_id)
    assert (
        answers[1]["error"]["code"] == -32601 and "eth_getProof" in answers[1]["error"]["message"]
    )
    assert answers[3]["error"]["code"] == -32600
    assert _post(revm_node_url, b"{not json")["error"]["code"] == -32700
    assert _post(revm_node_url, b"[]")["error"]["code"] == -32600
    by_name = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": {"a": 1}}
    assert _post(revm_node_url, json.dumps(by_name).encode())["error"]["code"] == -32602
    # web3's own batch requests (one HTTP request, a JSON array)
    funder = chain.w3.eth.accounts[0]
    with chain.w3.batch_requests() as requests:
        requests.add(chain.w3.eth.get_block("latest"))
        requests.add(chain.w3.eth.get_balance(funder))
        block, balance = requests.execute()
    assert block["number"] == number and balance > 0


def test_node_processes_fail_with_the_reason() -> None:
    with pytest.raises(ChainError, match="unknown node kind 'geth'.*'hardhat', 'revm'"):
        start_node("geth")  # type: ignore[arg-type]
    with pytest.raises(ChainError, match="shared=True is for the 'rpc' backend"):
        connect("revm", shared=True)

    class Crashing(RevmNode):
        def _command(self) -> list[str]:
            return [sys.executable, "-c", "import sys; sys.exit('cannot open the chain: boom')"]

    with pytest.raises(ChainError, match=r"(?s)revm node exited early \(exit code 1\).*boom"):
        Crashing().start()
    with RevmNode() as node:
        with pytest.raises(ChainError, match="the port is in use"):
            RevmNode(port=node.port).start()
        assert connect("rpc", node.url).w3.eth.block_number == 0
    with pytest.raises(ChainError, match="no Ethereum JSON-RPC node answers"):
        connect("rpc", node.url)  # stopped


def test_the_node_command_checks_its_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        revm_node_main(["--port", "70000"])
    assert info.value.code == 2 and "port 70000 is outside 1-65535" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the shared lock


def test_lock_files_are_named_after_the_url() -> None:
    url = "http://127.0.0.1:8545"
    assert chain_lock_path(url) == chain_lock_path(url + "/")
    assert chain_lock_path(url) != chain_lock_path("http://127.0.0.1:8546")


def test_a_shared_chain_signs_outside_the_lock_and_sends_and_mines_under_it(
    revm_node_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = os.open(chain_lock_path(revm_node_url), os.O_RDWR | os.O_CREAT)

    def locked() -> bool:
        """Whether the chain holds the lock (another open file cannot take it)."""
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False

    seen: list[tuple[str, bool]] = []
    request, batch = HTTPProvider.make_request, HTTPProvider.make_batch_request
    sign = TxSigner.sign

    def spy_request(self: HTTPProvider, method: str, params: Any) -> Any:
        seen.append((method, locked()))
        return request(self, method, params)

    def spy_batch(self: HTTPProvider, requests: list[tuple[str, Any]]) -> Any:
        seen.extend((method, locked()) for method, _ in requests)
        return batch(self, requests)

    def spy_sign(self: TxSigner, *args: Any, **kwargs: Any) -> Any:
        seen.append(("sign", locked()))
        return sign(self, *args, **kwargs)

    # before connecting: web3 keeps the provider's bound method once it made a request
    monkeypatch.setattr(HTTPProvider, "make_request", spy_request)
    monkeypatch.setattr(HTTPProvider, "make_batch_request", spy_batch)
    monkeypatch.setattr(TxSigner, "sign", spy_sign)
    try:
        chain = connect("rpc", revm_node_url, shared=True)
        market = setup_market(chain, [0] * 5)
        open_round(market, 1)
        requests = [h.range_request(1, 10 * i, 10 * i + 5) for i, h in enumerate(market.homes)]
        seen.clear()
        chain.transact_many(requests)  # the label's first batch: its gas limit is estimated
        chain.set_time(chain.now() + 100)
        assert market.contract.submissions(1, 0).count == 5  # eth_call
        assert not locked()  # released
    finally:
        os.close(probe)
    held: dict[str, set[bool]] = {}
    for method, state in seen:
        held.setdefault(method, set()).add(state)
    assert held["eth_estimateGas"] == held["sign"] == held["eth_call"] == {False}
    for method in ("evm_setAutomine", "eth_sendRawTransaction", "evm_mine"):
        assert held[method] == {True}, method
    assert [m for m, _ in seen].count("eth_sendRawTransaction") == len(market.homes)


# ---------------------------------------------------------------------------- processes


def _bounds(round_: int, home: int) -> tuple[int, int]:
    lower = (round_ * 7_919 + home * 104_729) % 9_000 - 4_000
    return lower, lower + (home * 31 + round_) % 3_000


def _submit_shard(
    url: str, address: str, registrar: str, keys: dict, shard: int, barrier: Any, results: Any
) -> None:
    """One simulator process: its own homes submit, one batch per round, all rounds open.
    `keys`: its homes' exported keys, handed over by the main process (as to a shard)."""
    try:
        chain = connect("rpc", url, shared=True)
        own = {i: PartyKeys.from_export(k) for i, k in keys.items()}
        homes = attach_homes(chain, address, own, registrar)
        blocks = []
        for round_ in range(1, ROUNDS + 1):
            requests = [h.range_request(round_, *_bounds(round_, i)) for i, h in homes.items()]
            barrier.wait(timeout=120)  # both processes sign and send at the same moment
            receipts = chain.transact_many(requests)
            assert all(r["status"] == 1 for r in receipts)
            blocks.append(sorted({int(r["blockNumber"]) for r in receipts}))
        results.put((shard, blocks))
    except BaseException:
        barrier.abort()
        results.put((shard, traceback.format_exc()))


@pytest.fixture(params=["revm", pytest.param("hardhat", marks=pytest.mark.node)])
def shared_node(request) -> tuple[str, str]:
    fixture = "revm_node_url" if request.param == "revm" else "hardhat_url"
    return request.param, request.getfixturevalue(fixture)


def test_processes_sharing_a_node_get_one_block_per_batch(shared_node: tuple[str, str]) -> None:
    kind, url = shared_node
    chain = connect("rpc", url, shared=True)
    homes = SHARDS * SHARD_HOMES
    market = setup_market(chain, [i // 5 for i in range(homes)])
    deadline = chain.now() + 3_600
    for round_ in range(1, ROUNDS + 1):
        for group in sorted(set(market.groups)):
            market.dso.open_round(round_, group, 0.08, 0.21, deadline)
    first_block, start_time = chain.w3.eth.block_number, chain.now()

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(SHARDS), ctx.Queue()
    processes = [
        ctx.Process(
            target=_submit_shard,
            args=(
                url,
                market.contract.address,
                market.registrar,
                {
                    i: market.homes[i].keys.export()
                    for i in range(shard * SHARD_HOMES, (shard + 1) * SHARD_HOMES)
                },
                shard,
                barrier,
                results,
            ),
        )
        for shard in range(SHARDS)
    ]
    for process in processes:
        process.start()
    try:
        outcome = dict(results.get(timeout=600) for _ in processes)
    except queue.Empty:
        pytest.fail(f"no result from the processes; exit codes {[p.exitcode for p in processes]}")
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    for shard, blocks in sorted(outcome.items()):
        assert not isinstance(blocks, str), f"process of shard {shard} failed:\n{blocks}"

    # Each batch in one block; the batches of a round in blocks of their own, nothing else mined.
    assert all(len(batch) == 1 for blocks in outcome.values() for batch in blocks), outcome
    batch_blocks = sorted(batch[0] for blocks in outcome.values() for batch in blocks)
    assert batch_blocks == list(range(first_block + 1, first_block + 1 + SHARDS * ROUNDS))
    assert chain.w3.eth.block_number == batch_blocks[-1]
    shard_of = {h.address: i // SHARD_HOMES for i, h in enumerate(market.homes)}
    for number in batch_blocks:
        txs = chain.w3.eth.get_block(number, full_transactions=True)["transactions"]
        assert len(txs) == SHARD_HOMES and len({shard_of[tx["from"]] for tx in txs}) == 1
    if kind == "revm":  # one second per block: the chain clock moved 2 s per round, no more
        assert chain.now() == start_time + SHARDS * ROUNDS
    # every home's submission counted: once each survivor removed its self-mask, the DSO's
    # sums are the true ones
    for round_ in range(1, ROUNDS + 1):
        chain.transact_many([h.recovery_request(round_) for h in market.homes])
    for round_ in range(1, ROUNDS + 1):
        for group in sorted(set(market.groups)):
            members = [i for i, g in enumerate(market.groups) if g == group]
            aggregate = market.dso.read_aggregate(round_, group)
            assert aggregate.complete and (aggregate.lower_w, aggregate.upper_w) == (
                sum(_bounds(round_, i)[0] for i in members),
                sum(_bounds(round_, i)[1] for i in members),
            )
