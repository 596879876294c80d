"""A connection to an Ethereum chain: embedded eth-tester (py-evm), embedded revm, or any
JSON-RPC node.

The same code path serves every backend: every party has a local key, transactions are signed
locally and sent raw, and every transaction's gas and latency is recorded. Chain time is
controlled through `set_time` so the co-simulation can place protocol phases at simulated
seconds (eth-tester's time travel, or `evm_mine` with a timestamp as hardhat and the revm
provider support). `transact_many` sends a batch without waiting for each receipt and, where the
backend lets the client mine (revm, hardhat), puts the batch into one block.

Several processes can share one node (mosaik runs a simulator per shard of homes): each opens it
with `connect("rpc", url, shared=True)` and uses its own accounts. Everything that switches the
node's auto-mining or mines (a batch, `fund`, `set_time`) or sends a transaction then runs under
an exclusive lock on a file named after the url, so one process's batch is never interleaved
with another's; the CPU-heavy part of a batch, signing, runs outside the lock, in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction

from sim.chain.errors import BatchRevert, ChainError, ContractRevert
from sim.chain.lock import FileLock, chain_lock_path
from sim.chain.reverts import contract_revert, reverts
from sim.chain.signing import SignedCall, TxSigner, call_message, calldata
from sim.chain.transport import ChainTimings, NodeProvider, Transport

__all__ = [
    "BACKENDS",
    "Backend",
    "BatchRevert",
    "Chain",
    "ChainError",
    "ChainTimings",
    "ContractRevert",
    "TxRecord",
    "TxRequest",
    "chain_lock_path",
    "connect",
]

Backend = Literal["embedded", "rpc", "revm"]
BACKENDS: tuple[Backend, ...] = ("embedded", "revm", "rpc")
_FUNDING_WEI = 10 * 10**18  # ~5,000 transactions of 40k gas at the 50 gwei cap


@dataclass(frozen=True)
class TxRecord:
    """One mined transaction: what it was, what it cost and how long it took."""

    label: str  # e.g. "private.submitRange"
    sender: str
    gas_used: int
    # `transact`: wall time from the dry run through sending to the receipt. `transact_many`:
    # the batch's wall time divided by its mined transactions, so that a batch's latencies add
    # up to its wall time and count / sum(latency) is its throughput.
    latency_s: float
    block: int
    tx_hash: str
    round: int | None = None  # protocol round, where the call belongs to one
    status: int = 1  # 0: mined but reverted (only `transact_many` sends without a dry run)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TxRequest:
    """One transaction of a batch for `Chain.transact_many`."""

    label: str
    account: LocalAccount
    fn: ContractFunction
    round: int | None = None


@dataclass
class _Signed:
    """A batch's transaction, signed before the batch takes the node."""

    index: int  # in the batch
    data: bytes  # the calldata
    gas_limit: int
    tx: SignedCall  # signed again if an earlier transaction of its sender was refused


class Chain:
    """A web3 connection plus local signing, time control and a transaction log.

    `fast` (the default) signs with the native signer and, on the in-process revm backend,
    hands transactions to the engine as fields and reads their receipts from it. `fast=False`
    is the reference path every backend took before: eth-account signing, raw transactions
    through web3, one receipt request per transaction (JSON-RPC batches to HTTP nodes either
    way). Both give the same raw transactions, hashes, blocks, gas and receipts; the tests and
    benchmarks/chain.py compare them. It can be switched between batches.
    """

    def __init__(
        self,
        w3: Web3,
        backend: Backend,
        tester: Any = None,
        lock: AbstractContextManager[Any] | None = None,
        fast: bool = True,
    ) -> None:
        self.w3 = w3
        self.backend = backend
        # Held while auto-mining is off, while mining and while sending: an exclusive file lock
        # when several processes share the node, else nothing.
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.timings = ChainTimings()
        self._web3_transport = Transport(w3, backend, self._lock, self.timings)
        self._engine_transport: Transport | None = None
        if backend == "revm":
            from sim.chain.transport import EngineTransport

            self._engine_transport = EngineTransport(w3, self._lock, self.timings)
        self.chain_id = w3.eth.chain_id
        self.records: list[TxRecord] = []
        self._tester = tester
        self._signer = TxSigner(w3, self.chain_id)
        self._gas_limits: dict[str, int] = {}
        self.fast = fast

    @property
    def fast(self) -> bool:
        return self._signer.native

    @fast.setter
    def fast(self, on: bool) -> None:
        self._signer.native = bool(on)
        self._web3_transport.format_receipts = bool(on)
        self._transport = (on and self._engine_transport) or self._web3_transport

    # ------------------------------------------------------------------ accounts

    def new_accounts(self, count: int, seed: str, fund: bool = True) -> list[LocalAccount]:
        """Deterministic local accounts (keccak(seed, i) as key), funded from the node's."""
        accounts = [Account.from_key(keccak(text=f"blockhems/{seed}/{i}")) for i in range(count)]
        if fund:
            self.fund([a.address for a in accounts])
        return accounts

    def fund(self, addresses: Sequence[str], wei: int = _FUNDING_WEI) -> None:
        funder = self.w3.eth.accounts[0]
        with self._transport.batch_mining() as batch:
            for a in addresses:
                batch.hashes.append(self._transport.send_value(funder, a, wei))
        for h in batch.hashes:
            if h not in batch.receipts:
                self.w3.eth.wait_for_transaction_receipt(h)

    # ------------------------------------------------------------------ time

    def now(self) -> int:
        """Timestamp of the latest block (s)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_time(self, timestamp: int) -> None:
        """Mine a block at `timestamp` (s); later blocks follow from there."""
        with self._lock:  # another process may mine between the check and the block
            if timestamp <= self.now():
                return
            if self._tester is not None:
                self._tester.time_travel(timestamp)
            else:
                self._rpc("evm_mine", [timestamp])

    def advance(self, seconds: int) -> None:
        self.set_time(self.now() + seconds)

    # ------------------------------------------------------------------ transactions

    def call(self, label: str, fn: ContractFunction, sender: str | None = None) -> Any:
        """A read-only call; a revert becomes a ContractRevert naming the custom error."""
        try:
            return fn.call({"from": sender} if sender else {})
        except reverts() as exc:
            raise contract_revert(label, fn, exc) from None

    def transact(
        self, label: str, account: LocalAccount, fn: ContractFunction, round_: int | None = None
    ) -> dict:
        """Sign, send and wait for one transaction; record its gas and latency.

        A dry run (eth_call) turns a refusal into a ContractRevert naming the custom error.
        The gas limit is estimated once per call type and reused with headroom: py-evm's
        estimate is a binary search of about a dozen executions, which dominated the cost.
        """
        start = time.perf_counter()
        message = call_message(account.address, fn)
        gas_limit = self._gas_limits.get(label)
        try:
            if gas_limit is None:
                estimate = self._transport.estimate_gas(message)
                gas_limit = self._gas_limits[label] = int(estimate * 1.5) + 50_000
            else:
                self._transport.dry_run(message)
        except reverts() as exc:
            raise contract_revert(label, fn, exc) from None
        signing = time.perf_counter()
        tx = self._signer.sign_call(account, fn.address, calldata(fn), gas_limit)
        self.timings.sign_s += time.perf_counter() - signing
        receipt = self._send_signed(tx)
        self._record(label, account.address, receipt, time.perf_counter() - start, round_)
        return receipt

    def deploy(self, label: str, account: LocalAccount, contract_factory: Any, *args: Any):
        """Deploy a contract; returns the bound web3 contract."""
        start = time.perf_counter()
        ctor = contract_factory.constructor(*args)
        gas = ctor.estimate_gas({"from": account.address})
        data = bytes(HexBytes(ctor.data_in_transaction))
        tx = self._signer.sign_call(account, None, data, int(gas * 1.25) + 10_000)
        receipt = self._send_signed(tx)
        self._record(label, account.address, receipt, time.perf_counter() - start)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=contract_factory.abi)

    def transact_many(self, items: Sequence[TxRequest]) -> list[dict | None]:
        """Sign and send a batch of transactions, then collect their receipts (in item order).

        Unlike `transact` there is no dry run per transaction: a refusal is mined as a failed
        transaction (status 0, its gas spent, as on a real chain where the homes submit
        concurrently), recorded with status 0, and decoded afterwards by replaying the call on
        the latest state. The replay names the custom error exactly whenever the refusal does not
        depend on a transaction mined after it (AlreadySubmitted, DeadlinePassed, NotMember, ...
        do not). Every request's record is kept; then a BatchRevert (a ContractRevert) names the
        refusals. A label's gas limit is estimated once, from its first request, as in `transact`;
        a request whose estimate is refused is not sent.

        Blocks: on revm and hardhat auto-mining is switched off for the batch and the batch is
        mined into one block (more only if it exceeds the block gas limit); on eth-tester each
        transaction is auto-mined in its own block, which measured faster there.

        Every transaction is estimated (where its label needs it) and signed first, on the state
        before the batch; only sending and mining hold the node (the shared lock, see `connect`).
        To a JSON-RPC node the transactions go in one JSON-RPC batch request, and their receipts
        come back in one. A sender whose transaction the node refuses has its later ones signed
        again, with the nonce the refused one left unused.
        """
        if not items:
            return []
        start = time.perf_counter()
        timings = self.timings
        timings.batches += 1
        failures: list[tuple[int, ContractRevert]] = []
        node_errors: list[str] = []
        sent: list[tuple[int, bytes]] = []
        # Sign everything before taking the node: signing is the CPU-heavy part, and processes
        # sharing the node sign their batches in parallel.
        signed: list[_Signed] = []
        sign = self._signer.sign_call
        for i, item in enumerate(items):
            data = calldata(item.fn)
            gas_limit = self._gas_limits.get(item.label)
            if gas_limit is None:
                try:
                    estimate = self._transport.estimate_gas(
                        call_message(item.account.address, item.fn)
                    )
                except reverts() as exc:
                    failures.append((i, contract_revert(item.label, item.fn, exc)))
                    continue
                gas_limit = self._gas_limits[item.label] = int(estimate * 1.5) + 50_000
            signed.append(
                _Signed(i, data, gas_limit, sign(item.account, item.fn.address, data, gas_limit))
            )
        timings.sign_s += time.perf_counter() - start
        refused_senders: set[str] = set()
        with self._transport.batch_mining() as batch:
            for wave in self._transport.waves(signed, lambda tx: tx.tx.sender):
                for tx in wave:
                    item = items[tx.index]
                    if item.account.address in refused_senders:  # signed after the refused nonce
                        tx.tx = sign(item.account, item.fn.address, tx.data, tx.gas_limit)
                for tx, result in zip(
                    wave, self._transport.send([t.tx for t in wave]), strict=True
                ):
                    item = items[tx.index]
                    sender = item.account.address
                    if isinstance(result, Exception):  # refused: decode a revert, else report
                        self._signer.forget_nonce(sender)  # the nonce was not used
                        refused_senders.add(sender)
                        refusal = self._replay(item)
                        if refusal is not None:
                            failures.append((tx.index, refusal))
                        else:
                            node_errors.append(f"{item.label} from {sender}: {result}")
                        continue
                    batch.hashes.append(result)
                    sent.append((tx.index, result))
        receipts: list[dict | None] = [None] * len(items)
        for i, tx_hash in sent:
            receipts[i] = batch.receipts.get(tx_hash) or self._transport.receipt(tx_hash)
        share = (time.perf_counter() - start) / max(1, len(sent))
        for i, _ in sent:
            item, receipt = items[i], receipts[i]
            self._record(item.label, item.account.address, receipt, share, item.round)
            if receipt["status"] != 1:
                failures.append((i, self._replay(item) or self._unexplained(item, receipt)))
        if node_errors:
            raise ChainError(
                f"the node refused {len(node_errors)} transactions of the batch: "
                + "; ".join(node_errors)
            )
        if failures:
            failures.sort(key=lambda f: f[0])
            raise BatchRevert(failures, receipts)
        return receipts

    def _replay(self, item: TxRequest) -> ContractRevert | None:
        """The custom error the call raises now, or None if it would succeed."""
        try:
            self._transport.dry_run(call_message(item.account.address, item.fn))
        except reverts() as exc:
            return contract_revert(item.label, item.fn, exc)
        return None

    def _unexplained(self, item: TxRequest, receipt: dict) -> ContractRevert:
        return ContractRevert(
            item.label,
            "UnknownRevert",
            {
                "message": "failed in the batch but succeeds when replayed on the latest state",
                "tx_hash": receipt["transactionHash"].hex(),
                "gas_used": int(receipt["gasUsed"]),
            },
        )

    def _rpc(self, method: str, params: list) -> Any:
        """A node-specific request (evm_*); an error answer becomes a ChainError naming it."""
        return self._transport.rpc(method, params)

    def _send_signed(self, tx: SignedCall) -> dict:
        with self._lock:  # not into the middle of another process's batch
            (tx_hash,) = self._transport.send([tx])
        if isinstance(tx_hash, Exception):
            raise tx_hash
        receipt = self._transport.receipt(tx_hash)
        if receipt["status"] != 1:
            raise ChainError(
                f"transaction {tx_hash.hex()} failed after a successful dry run "
                f"(gas used {receipt['gasUsed']} of limit {tx.gas})"
            )
        return receipt

    def _record(
        self, label: str, sender: str, receipt: dict, latency_s: float, round_: int | None = None
    ) -> None:
        self.records.append(
            TxRecord(
                label=label,
                sender=sender,
                gas_used=int(receipt["gasUsed"]),
                latency_s=latency_s,
                block=int(receipt["blockNumber"]),
                tx_hash=receipt["transactionHash"].hex(),
                round=round_,
                status=int(receipt["status"]),
            )
        )

    # ------------------------------------------------------------------ raw views for audits

    def storage_at(self, address: str, slot: int) -> bytes:
        return bytes(self.w3.eth.get_storage_at(address, slot))


def connect(
    backend: Backend = "embedded",
    url: str | None = None,
    timeout_s: float = 30.0,
    shared: bool = False,
) -> Chain:
    """Open a chain: `embedded` (eth-tester + py-evm, in process), `revm` (pyrevm, in process,
    fast) or `rpc` at `url`.

    `shared=True` (rpc only): other processes use the same node at the same time, each with its
    own accounts; batches, funding, mining and sends then take an exclusive lock on
    `chain_lock_path(url)`, so that no process switches auto-mining back on or mines while
    another one is sending its batch.
    """
    if shared and backend != "rpc":
        raise ChainError(
            f"shared=True is for the 'rpc' backend (a node several processes use); the "
            f"{backend!r} backend is a chain inside this process, which no other process sees"
        )
    if backend == "embedded":
        from sim.chain.tester import open_tester

        w3, tester = open_tester()
        chain = Chain(w3, "embedded", tester=tester)
    elif backend == "rpc":
        if not url:
            raise ChainError("backend 'rpc' needs a JSON-RPC url, e.g. http://127.0.0.1:8545")
        w3 = Web3(NodeProvider(url, timeout_s))
        try:
            w3.eth.chain_id  # noqa: B018 - probe the node
        except Exception as exc:  # any transport failure: name the url
            raise ChainError(f"no Ethereum JSON-RPC node answers at {url}: {exc}") from None
        if not w3.eth.accounts:
            raise ChainError(f"the node at {url} has no unlocked account to fund the parties")
        chain = Chain(w3, "rpc", lock=FileLock(chain_lock_path(url)) if shared else None)
    elif backend == "revm":
        from sim.chain.revm.provider import RevmProvider

        chain = Chain(Web3(RevmProvider()), "revm")
    else:
        raise ChainError(
            f"unknown chain backend {backend!r}: use one of {', '.join(map(repr, BACKENDS))}"
        )
    return chain
