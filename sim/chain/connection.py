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

import ast
import hashlib
import os
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import HexStr
from eth_utils import get_abi_input_types, keccak
from hexbytes import HexBytes
from requests.exceptions import HTTPError
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound
from web3.types import RPCEndpoint, TxParams

from sim.chain.artifacts import decode_revert
from sim.errors import BlockhemsError

Backend = Literal["embedded", "rpc", "revm"]
BACKENDS: tuple[Backend, ...] = ("embedded", "revm", "rpc")
# eth-tester raises its own exception for custom errors; JSON-RPC nodes give web3's.
_REVERTS = (ContractCustomError, ContractLogicError, TransactionFailed)

GWEI = 10**9
_MAX_FEE_WEI = 50 * GWEI
_TIP_WEI = 1 * GWEI
_FUNDING_WEI = 10 * 10**18  # ~5,000 transactions of 40k gas at the 50 gwei cap


class ChainError(BlockhemsError, RuntimeError):
    """The chain could not be reached or used."""


class ContractRevert(BlockhemsError, RuntimeError):
    """A contract call was refused; `error` is the Solidity custom error's name."""

    def __init__(self, label: str, error: str, args: dict[str, Any]) -> None:
        self.label = label
        self.error = error
        self.args_by_name = args
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        super().__init__(f"{label} refused by the contract: {error}({shown})", key=label)


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
class _Batch:
    """Transactions sent inside `Chain._batch_mining` and the receipts read while mining."""

    hashes: list[bytes] = field(default_factory=list)
    receipts: dict[bytes, Any] = field(default_factory=dict)


@dataclass
class _Signed:
    """A batch's transaction, signed before the batch takes the node."""

    index: int  # in the batch
    message: TxParams
    gas_limit: int
    raw: bytes  # signed again if an earlier transaction of its sender was refused


def chain_lock_path(url: str) -> Path:
    """The lock file that processes sharing the node at `url` (`connect(..., shared=True)`) take
    to send, mine and batch; named after the url, so spell the url alike in every process."""
    digest = hashlib.sha256(url.strip().rstrip("/").lower().encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"blockhems-chain-{digest}.lock"


class _FileLock:
    """An exclusive `flock` on a file, held by one process at a time; re-entrant per object.

    The file is opened per process: an open file inherited through fork would share its lock
    with the parent, which would then not exclude the child.
    """

    def __init__(self, path: Path) -> None:
        try:
            import fcntl
        except ImportError:  # Windows
            raise ChainError("shared=True needs fcntl.flock, which this platform lacks") from None
        self.path = path
        self._flock = fcntl.flock
        self._exclusive, self._unlock = fcntl.LOCK_EX, fcntl.LOCK_UN
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0
        self._open()  # fail now, naming the file, rather than at the first batch

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ChainError(f"cannot open the chain's lock file {self.path}: {exc}") from None
        self._fd, self._pid, self._depth = fd, os.getpid(), 0
        weakref.finalize(self, os.close, fd)

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._open()
        if self._depth == 0:
            self._flock(self._fd, self._exclusive)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._flock(self._fd, self._unlock)


class BatchRevert(ContractRevert):
    """Transactions of a batch were refused by the contract; the others went through.

    Named after the first refusal (so `pytest.raises(ContractRevert, match=...)` works);
    `failures` holds every refusal with its index in the batch, `receipts` the receipt of every
    request (None where it was refused before sending).
    """

    def __init__(
        self, failures: list[tuple[int, ContractRevert]], receipts: list[dict | None]
    ) -> None:
        first = failures[0][1]
        super().__init__(first.label, first.error, first.args_by_name)
        self.failures = failures
        self.receipts = receipts
        if len(failures) > 1:
            self.args = (f"{self.args[0]} (and {len(failures) - 1} more refusals in the batch)",)


class Chain:
    """A web3 connection plus local signing, time control and a transaction log."""

    def __init__(
        self,
        w3: Web3,
        backend: Backend,
        tester: Any = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.w3 = w3
        self.backend = backend
        # Held while auto-mining is off, while mining and while sending: an exclusive file lock
        # when several processes share the node, else nothing.
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.chain_id = w3.eth.chain_id
        self.records: list[TxRecord] = []
        self._tester = tester
        self._nonces: dict[str, int] = {}
        self._gas_limits: dict[str, int] = {}
        # Whether the client can switch auto-mining off and mine itself (evm_setAutomine):
        # the revm provider and hardhat can; eth-tester could, but measured slower (7.0 s vs
        # 2.97 s for 55 transactions) than its auto-mine; other nodes are asked once.
        self._manual_mining: bool | None = {"revm": True, "embedded": False}.get(backend)
        # Whether to send a batch's transactions, and read its receipts, in one JSON-RPC batch
        # request each (HTTP nodes; until one refuses batches).
        self._json_batches = backend == "rpc"

    # ------------------------------------------------------------------ accounts

    def new_accounts(self, count: int, seed: str, fund: bool = True) -> list[LocalAccount]:
        """Deterministic local accounts (keccak(seed, i) as key), funded from the node's."""
        accounts = [Account.from_key(keccak(text=f"blockhems/{seed}/{i}")) for i in range(count)]
        if fund:
            self.fund([a.address for a in accounts])
        return accounts

    def fund(self, addresses: Sequence[str], wei: int = _FUNDING_WEI) -> None:
        funder = self.w3.eth.accounts[0]
        with self._batch_mining() as batch:
            for a in addresses:
                batch.hashes.append(
                    self.w3.eth.send_transaction({"from": funder, "to": a, "value": wei})
                )
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
        except _REVERTS as exc:
            raise self._revert(label, fn, exc) from None

    def transact(
        self, label: str, account: LocalAccount, fn: ContractFunction, round_: int | None = None
    ) -> dict:
        """Sign, send and wait for one transaction; record its gas and latency.

        A dry run (eth_call) turns a refusal into a ContractRevert naming the custom error.
        The gas limit is estimated once per call type and reused with headroom: py-evm's
        estimate is a binary search of about a dozen executions, which dominated the cost.
        """
        start = time.perf_counter()
        message = _message(account.address, fn)
        gas_limit = self._gas_limits.get(label)
        try:
            if gas_limit is None:
                estimate = self.w3.eth.estimate_gas(message)
                gas_limit = self._gas_limits[label] = int(estimate * 1.5) + 50_000
            else:
                self.w3.eth.call(message)
        except _REVERTS as exc:
            raise self._revert(label, fn, exc) from None
        receipt = self._send_signed(account, self._contract_tx(message, gas_limit))
        self._record(label, account.address, receipt, time.perf_counter() - start, round_)
        return receipt

    def deploy(self, label: str, account: LocalAccount, contract_factory: Any, *args: Any):
        """Deploy a contract; returns the bound web3 contract."""
        start = time.perf_counter()
        ctor = contract_factory.constructor(*args)
        gas = ctor.estimate_gas({"from": account.address})
        tx = ctor.build_transaction(self._tx_fields(account.address, int(gas * 1.25) + 10_000))
        receipt = self._send_signed(account, tx)
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
        failures: list[tuple[int, ContractRevert]] = []
        node_errors: list[str] = []
        sent: list[tuple[int, bytes]] = []
        # Sign everything before taking the node: signing is the CPU-heavy part, and processes
        # sharing the node sign their batches in parallel.
        signed: list[_Signed] = []
        for i, item in enumerate(items):
            message = _message(item.account.address, item.fn)
            gas_limit = self._gas_limits.get(item.label)
            if gas_limit is None:
                try:
                    estimate = self.w3.eth.estimate_gas(message)
                except _REVERTS as exc:
                    failures.append((i, self._revert(item.label, item.fn, exc)))
                    continue
                gas_limit = self._gas_limits[item.label] = int(estimate * 1.5) + 50_000
            raw = item.account.sign_transaction(self._contract_tx(message, gas_limit))
            signed.append(_Signed(i, message, gas_limit, raw.raw_transaction))
        refused_senders: set[str] = set()
        with self._batch_mining() as batch:
            for wave in self._waves(items, signed):
                raws = []
                for tx in wave:
                    item = items[tx.index]
                    if item.account.address in refused_senders:  # signed after the refused nonce
                        tx.raw = item.account.sign_transaction(
                            self._contract_tx(tx.message, tx.gas_limit)
                        ).raw_transaction
                    raws.append(tx.raw)
                for tx, result in zip(wave, self._send_raw(raws), strict=True):
                    item = items[tx.index]
                    sender = item.account.address
                    if isinstance(result, Exception):  # refused: decode a revert, else report
                        self._nonces.pop(sender, None)  # the nonce was not used
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
            receipts[i] = batch.receipts.get(tx_hash) or self.w3.eth.wait_for_transaction_receipt(
                tx_hash
            )
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

    def _waves(self, items: Sequence[TxRequest], signed: list[_Signed]) -> Iterator[list[_Signed]]:
        """The signed transactions in order, in groups sent together (see `_send_raw`).

        A group never holds a sender twice, so that a refusal can still re-sign the sender's
        later transactions before they are sent. Without JSON-RPC batches, one at a time.
        """
        if not self._json_batches:
            yield from ([tx] for tx in signed)
            return
        wave: list[_Signed] = []
        senders: set[str] = set()
        for tx in signed:
            sender = items[tx.index].account.address
            if sender in senders:
                yield wave
                wave, senders = [], set()
            wave.append(tx)
            senders.add(sender)
        if wave:
            yield wave

    def _send_raw(self, raws: list[bytes]) -> list[bytes | Exception]:
        """Send raw transactions in order: each one's hash, or the error the node refused it with.

        To a JSON-RPC node, in one request (a JSON-RPC batch): per transaction, an HTTP round trip
        cost more than everything else a batch does.
        """
        if self._json_batches and len(raws) > 1:
            try:
                answers = self.w3.provider.make_batch_request(  # type: ignore[attr-defined]
                    [(RPCEndpoint("eth_sendRawTransaction"), ["0x" + raw.hex()]) for raw in raws]
                )
            except HTTPError:  # refused as a whole (an HTTP error status): nothing was sent
                answers = None
            if isinstance(answers, list) and len(answers) == len(raws):
                return [
                    HexBytes(a["result"]) if "error" not in a else ChainError(_rpc_error_text(a))
                    for a in answers
                ]
            # the node takes no batches (it answered with one error): one at a time from now on
            self._json_batches = False
        results: list[bytes | Exception] = []
        for raw in raws:
            try:
                results.append(self.w3.eth.send_raw_transaction(raw))
            except Exception as exc:
                results.append(exc)
        return results

    def _read_receipts(self, hashes: list[bytes]) -> dict[bytes, Any]:
        """The receipts of the mined transactions among `hashes` (in one request where it can)."""
        if self._json_batches and len(hashes) > 1:
            try:
                with self.w3.batch_requests() as request:
                    for tx_hash in hashes:
                        request.add(self.w3.eth.get_transaction_receipt(tx_hash))
                    return dict(zip(hashes, request.execute(), strict=True))
            except Exception:  # some not mined yet (or dropped): ask one by one, as below
                pass
        found = {}
        for tx_hash in hashes:
            try:
                found[tx_hash] = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
        return found

    def _replay(self, item: TxRequest) -> ContractRevert | None:
        """The custom error the call raises now, or None if it would succeed."""
        try:
            self.w3.eth.call(_message(item.account.address, item.fn))
        except _REVERTS as exc:
            return self._revert(item.label, item.fn, exc)
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

    @contextmanager
    def _batch_mining(self) -> Iterator[_Batch]:
        """Collect the hashes sent inside; where the client can mine, mine them into one block.

        Auto-mining is off inside and back on afterwards, also when sending failed midway, so
        that the node never stays in manual mode with transactions stuck in its pool. Receipts
        read while mining are kept in the batch, so they are fetched once. The whole of it holds
        the chain's lock: a process sharing the node cannot switch auto-mining back on, or mine,
        while this batch is being sent.
        """
        batch = _Batch()
        with self._lock:  # from switching auto-mining off to back on, as one step
            if self._manual_mining is None:  # another JSON-RPC node: does it take evm_setAutomine?
                response = self.w3.provider.make_request("evm_setAutomine", [True])
                self._manual_mining = "error" not in response
            if not self._manual_mining:
                yield batch
                return
            self._rpc("evm_setAutomine", [False])
            try:
                yield batch
            finally:
                try:
                    self._mine_all(batch)
                finally:
                    self._rpc("evm_setAutomine", [True])

    def _mine_all(self, batch: _Batch) -> None:
        todo = list(batch.hashes)
        # A block takes as many transactions as fit its gas limit: mine until all are in.
        for _ in range(len(todo)):
            if not todo:
                return
            self._rpc("evm_mine", [])
            found = self._read_receipts(todo)
            batch.receipts.update(found)
            todo = [tx_hash for tx_hash in todo if tx_hash not in found]
        if todo:
            raise ChainError(
                f"{len(todo)} transactions of a batch were still not mined after "
                f"{len(batch.hashes)} blocks, e.g. {todo[0].hex()}"
            )

    def _rpc(self, method: str, params: list) -> Any:
        """A node-specific request (evm_*); an error answer becomes a ChainError naming it."""
        response = self.w3.provider.make_request(method, params)
        if "error" in response:
            raise ChainError(
                f"{method}{params} failed on the {self.backend} backend: {response['error']}"
            )
        return response.get("result")

    def _contract_tx(self, message: TxParams, gas_limit: int) -> dict:
        """The transaction to sign for a contract call (what build_transaction would give)."""
        fields = self._tx_fields(message["from"], gas_limit)
        return {**fields, "to": message["to"], "data": message["data"], "value": 0}

    def _tx_fields(self, sender: str, gas_limit: int) -> dict:
        nonce = self._nonces.get(sender)
        if nonce is None:
            # "pending": in a batch with auto-mining off, sent transactions are not yet mined
            nonce = self.w3.eth.get_transaction_count(sender, "pending")
        self._nonces[sender] = nonce + 1
        return {
            "from": sender,
            "nonce": nonce,
            "chainId": self.chain_id,
            "gas": gas_limit,
            "maxFeePerGas": _MAX_FEE_WEI,
            "maxPriorityFeePerGas": _TIP_WEI,
        }

    def _send_signed(self, account: LocalAccount, tx: dict) -> dict:
        signed = account.sign_transaction(tx)
        with self._lock:  # not into the middle of another process's batch
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise ChainError(
                f"transaction {tx_hash.hex()} failed after a successful dry run "
                f"(gas used {receipt['gasUsed']} of limit {tx['gas']})"
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

    def _revert(self, label: str, fn: ContractFunction, exc: Exception) -> ContractRevert:
        data = getattr(exc, "data", None)
        if isinstance(exc, TransactionFailed):
            data = _tester_revert_data(exc)
        name, args = decode_revert(fn.contract_abi, data, str(exc))
        return ContractRevert(label, name, args)

    # ------------------------------------------------------------------ raw views for audits

    def storage_at(self, address: str, slot: int) -> bytes:
        return bytes(self.w3.eth.get_storage_at(address, slot))


def _rpc_error_text(answer: dict) -> str:
    """The message of a JSON-RPC error answer."""
    error = answer["error"]
    if isinstance(error, dict) and "message" in error:
        return f"{error['message']} (JSON-RPC error {error.get('code')})"
    return str(error)


def _message(sender: str, fn: ContractFunction) -> TxParams:
    """The call `fn` from `sender` as eth_call / eth_estimateGas / transaction fields.

    Encoded with the ABI codec directly: web3's own path (`fn.call`, `fn.build_transaction`)
    looks the function up in the ABI and validates the whole ABI again on every call, about
    2.5 ms per transaction, more than the revm backend needs to execute it. Arguments the codec
    does not take as they are (ENS names, hex strings for bytes) go through web3's encoder,
    which normalizes them.
    """
    try:
        if fn.arguments is None:
            raise TypeError("no bound arguments")
        types = get_abi_input_types(fn.abi)
        data = HexStr(fn.selector + fn.w3.codec.encode(types, fn.arguments).hex())
    except (EncodingError, TypeError, ValueError):
        data = fn._encode_transaction_data()
    return {"from": sender, "to": fn.address, "data": data}


def _tester_revert_data(exc: BaseException) -> str | None:
    """The raw revert bytes behind an eth-tester failure.

    web3's eth-tester provider re-raises with a message that decodes the payload as a string
    where it can (which garbles custom errors with a string argument); the original exception,
    kept as the context, carries the raw bytes.
    """
    seen: BaseException | None = exc
    while seen is not None:
        arg = seen.args[0] if seen.args else None
        if isinstance(arg, Exception) and arg.args:
            arg = arg.args[0]
        if isinstance(arg, str) and arg.startswith(("b'", 'b"')):
            # Some eth-tester paths hand over the repr of the bytes instead of the bytes.
            try:
                arg = ast.literal_eval(arg)
            except (SyntaxError, ValueError):
                arg = None
        if isinstance(arg, bytes):
            return "0x" + arg.hex()
        seen = seen.__context__
    return None


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
        from eth_tester import EthereumTester, PyEVMBackend
        from web3.providers.eth_tester import EthereumTesterProvider

        tester = EthereumTester(PyEVMBackend())
        chain = Chain(Web3(EthereumTesterProvider(tester)), "embedded", tester=tester)
    elif backend == "rpc":
        if not url:
            raise ChainError("backend 'rpc' needs a JSON-RPC url, e.g. http://127.0.0.1:8545")
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
        try:
            w3.eth.chain_id  # noqa: B018 - probe the node
        except Exception as exc:  # any transport failure: name the url
            raise ChainError(f"no Ethereum JSON-RPC node answers at {url}: {exc}") from None
        if not w3.eth.accounts:
            raise ChainError(f"the node at {url} has no unlocked account to fund the parties")
        chain = Chain(w3, "rpc", lock=_FileLock(chain_lock_path(url)) if shared else None)
    elif backend == "revm":
        from sim.chain.revm.provider import RevmProvider

        chain = Chain(Web3(RevmProvider()), "revm")
    else:
        raise ChainError(
            f"unknown chain backend {backend!r}: use one of {', '.join(map(repr, BACKENDS))}"
        )
    return chain
