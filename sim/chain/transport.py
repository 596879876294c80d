"""How a `Chain` talks to its node when it sends: raw transactions, receipts and mining, one at
a time or as JSON-RPC batches, under the shared lock.

Where the client can mine (the revm provider, hardhat; other JSON-RPC nodes are asked once),
a batch's transactions are sent with auto-mining off and mined into as few blocks as their gas
allows. To an HTTP node the raw transactions go in one JSON-RPC batch request, and their
receipts come back in one, until the node refuses batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from hexbytes import HexBytes
from requests.exceptions import HTTPError
from web3 import HTTPProvider, Web3
from web3._utils.method_formatters import receipt_formatter
from web3.datastructures import AttributeDict
from web3.exceptions import TransactionNotFound
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint, RPCResponse, TxParams

from sim.chain.errors import ChainError
from sim.chain.reverts import rpc_error_text
from sim.chain.signing import SignedCall

T = TypeVar("T")
_WEB3_GAS_BUFFER = 100_000  # web3's default in get_buffered_gas_estimate
DEFAULT_RPC_TIMEOUT_S = 30.0


class NodeUnreachable(ChainError):
    """The JSON-RPC node went away (connection refused or reset) or stopped answering (no
    answer within the timeout): the run cannot go on."""


class NodeProvider(HTTPProvider):
    """web3's HTTP provider with bounded waits, whose transport failures are one ChainError.

    web3's default retries every failure 5 times with the request's timeout each (a frozen
    node: 5 x 30 s and more); here a request waits at most `timeout_s` for its answer, a
    refused connection is retried 3 times within 0.7 s (a node restarting its socket) and a
    timeout is not retried. `name` names the node in the message ("hardhat node", ...).
    """

    def __init__(
        self, url: str, timeout_s: float = DEFAULT_RPC_TIMEOUT_S, name: str = "JSON-RPC node"
    ) -> None:
        retry = ExceptionRetryConfiguration(
            errors=(requests.exceptions.ConnectionError,), retries=3, backoff_factor=0.2
        )
        super().__init__(
            url,
            request_kwargs={"timeout": timeout_s},
            exception_retry_configuration=retry,
        )
        self.timeout_s = timeout_s
        self.name = name

    def _unreachable(self, method: str, exc: Exception) -> NodeUnreachable:
        if isinstance(exc, requests.exceptions.Timeout):
            why = f"did not answer {method} within {self.timeout_s:g} s (frozen or overloaded)"
        else:
            why = f"is gone ({type(exc).__name__} on {method}: connection refused or reset)"
        return NodeUnreachable(f"the {self.name} at {self.endpoint_uri} {why}", key=self.name)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unreachable(method, exc) from None

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        try:
            return super().make_batch_request(batch_requests)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            method = batch_requests[0][0] if batch_requests else "a batch"
            raise self._unreachable(f"{method} (batch)", exc) from None


@dataclass
class ChainTimings:
    """Wall time the chain spent on its own transactions, by step, summed since it opened.

    `sign_s`: calldata, the gas estimates a label needs once, signing (`transact_many`,
    `transact`); `send_s`: handing the transactions to the node; `mine_s`: mining the batches
    (`transact_many`, `fund`); `receipts_s`: reading receipts. `txs` counts the transactions
    handed to the node (`transact_many`, `transact`, `deploy`), `batches` the `transact_many`
    calls. Dry runs (`transact`), `fund`'s own sends and replays of refusals are not counted.
    """

    txs: int = 0
    batches: int = 0
    sign_s: float = 0.0
    send_s: float = 0.0
    mine_s: float = 0.0
    receipts_s: float = 0.0


@dataclass
class Batch:
    """Transactions sent inside `Transport.batch_mining` and the receipts read while mining."""

    hashes: list[bytes] = field(default_factory=list)
    receipts: dict[bytes, Any] = field(default_factory=dict)


class Transport:
    """Sending, mining and receipts on the node behind `w3`, holding `lock` where needed."""

    def __init__(
        self,
        w3: Web3,
        backend: str,
        lock: AbstractContextManager[Any],
        timings: ChainTimings | None = None,
    ) -> None:
        self.w3 = w3
        self.backend = backend
        self.timings = timings if timings is not None else ChainTimings()
        # Held while auto-mining is off, while mining and while sending: an exclusive file lock
        # when several processes share the node, else nothing.
        self.lock = lock
        # Whether the client can switch auto-mining off and mine itself (evm_setAutomine):
        # the revm provider and hardhat can; eth-tester could, but measured slower (7.0 s vs
        # 2.97 s for 55 transactions) than its auto-mine; other nodes are asked once.
        self.manual_mining: bool | None = {"revm": True, "embedded": False}.get(backend)
        # Whether to send a batch's transactions, and read its receipts, in one JSON-RPC batch
        # request each (HTTP nodes; until one refuses batches).
        self.json_batches = backend == "rpc"
        # Whether to format a JSON-RPC batch of receipts with web3's formatter directly (the
        # fast path) rather than through web3's batch_requests (the reference)
        self.format_receipts = True

    def rpc(self, method: str, params: list) -> Any:
        """A node-specific request (evm_*); an error answer becomes a ChainError naming it."""
        response = self.w3.provider.make_request(method, params)
        if "error" in response:
            raise ChainError(
                f"{method}{params} failed on the {self.backend} backend: {response['error']}"
            )
        return response.get("result")

    def waves(self, txs: list[T], sender: Callable[[T], str]) -> Iterator[list[T]]:
        """`txs` in order, in groups sent together (see `send_raw`).

        A group never holds a sender twice, so that a refusal can still re-sign the sender's
        later transactions before they are sent. Without JSON-RPC batches, one at a time.
        """
        if not self.json_batches:
            yield from ([tx] for tx in txs)
            return
        wave: list[T] = []
        senders: set[str] = set()
        for tx in txs:
            if sender(tx) in senders:
                yield wave
                wave, senders = [], set()
            wave.append(tx)
            senders.add(sender(tx))
        if wave:
            yield wave

    def send(self, txs: list[SignedCall]) -> list[bytes | Exception]:
        """Send signed transactions in order: each one's hash, or the error the node refused it
        with (see `send_raw`)."""
        start = time.perf_counter()
        try:
            return self.send_raw([tx.raw for tx in txs])
        finally:
            self.timings.send_s += time.perf_counter() - start
            self.timings.txs += len(txs)

    def dry_run(self, message: TxParams) -> None:
        """Execute the call on the latest state (eth_call); a refusal raises web3's exception."""
        self.w3.eth.call(message)

    def estimate_gas(self, message: TxParams) -> int:
        """The call's gas estimate; a refusal raises web3's exception."""
        return int(self.w3.eth.estimate_gas(message))

    def send_value(self, sender: str, to: str, wei: int) -> bytes:
        """Send `wei` from `sender`, one of the node's unlocked accounts (eth_sendTransaction)."""
        return self.w3.eth.send_transaction({"from": sender, "to": to, "value": wei})

    def receipt(self, tx_hash: bytes) -> Any:
        """The receipt of a sent transaction, waiting until it is mined."""
        start = time.perf_counter()
        try:
            return self._receipt(tx_hash)
        finally:
            self.timings.receipts_s += time.perf_counter() - start

    def _receipt(self, tx_hash: bytes) -> Any:
        return self.w3.eth.wait_for_transaction_receipt(tx_hash)

    def send_raw(self, raws: list[bytes]) -> list[bytes | Exception]:
        """Send raw transactions in order: each one's hash, or the error the node refused it with.

        To a JSON-RPC node, in one request (a JSON-RPC batch): per transaction, an HTTP round trip
        cost more than everything else a batch does.
        """
        if self.json_batches and len(raws) > 1:
            try:
                answers = self.w3.provider.make_batch_request(  # type: ignore[attr-defined]
                    [(RPCEndpoint("eth_sendRawTransaction"), ["0x" + raw.hex()]) for raw in raws]
                )
            except HTTPError:  # refused as a whole (an HTTP error status): nothing was sent
                answers = None
            except NodeUnreachable:
                raise
            if isinstance(answers, list) and len(answers) == len(raws):
                return [
                    HexBytes(a["result"]) if "error" not in a else ChainError(rpc_error_text(a))
                    for a in answers
                ]
            # the node takes no batches (it answered with one error): one at a time from now on
            self.json_batches = False
        results: list[bytes | Exception] = []
        for raw in raws:
            try:
                results.append(self.w3.eth.send_raw_transaction(raw))
            except NodeUnreachable:
                raise
            except Exception as exc:
                results.append(exc)
        return results

    def read_receipts(self, hashes: list[bytes]) -> dict[bytes, Any]:
        """The receipts of the mined transactions among `hashes` (in one request where it can)."""
        if self.json_batches and len(hashes) > 1 and self.format_receipts:
            found = self._receipt_batch(hashes)
            if found is not None:
                return found
        elif self.json_batches and len(hashes) > 1:
            try:
                with self.w3.batch_requests() as request:
                    for tx_hash in hashes:
                        request.add(self.w3.eth.get_transaction_receipt(tx_hash))
                    return dict(zip(hashes, request.execute(), strict=True))
            except NodeUnreachable:
                raise
            except Exception:  # some not mined yet (or dropped): ask one by one, as below
                pass
        found = {}
        for tx_hash in hashes:
            try:
                found[tx_hash] = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
        return found

    def _receipt_batch(self, hashes: list[bytes]) -> dict[bytes, Any] | None:
        """The receipts of `hashes` in one JSON-RPC batch, formatted by web3's own receipt
        formatter, without its request pipeline (2.5 ms a receipt, the formatter 0.9 ms); None
        unless every one came back (then the caller asks one by one, as web3's batch would)."""
        try:
            answers = self.w3.provider.make_batch_request(  # type: ignore[attr-defined]
                [(RPCEndpoint("eth_getTransactionReceipt"), ["0x" + h.hex()]) for h in hashes]
            )
        except NodeUnreachable:
            raise
        except Exception:  # the transport failed: ask one by one, as below
            return None
        if not isinstance(answers, list) or len(answers) != len(hashes):
            return None
        if any("error" in a or a.get("result") is None for a in answers):
            return None
        return {
            h: AttributeDict.recursive(receipt_formatter(a["result"]))
            for h, a in zip(hashes, answers, strict=True)
        }

    @contextmanager
    def batch_mining(self) -> Iterator[Batch]:
        """Collect the hashes sent inside; where the client can mine, mine them into one block.

        Auto-mining is off inside and back on afterwards, also when sending failed midway, so
        that the node never stays in manual mode with transactions stuck in its pool. Receipts
        read while mining are kept in the batch, so they are fetched once. The whole of it holds
        the chain's lock: a process sharing the node cannot switch auto-mining back on, or mine,
        while this batch is being sent.
        """
        batch = Batch()
        with self.lock:  # from switching auto-mining off to back on, as one step
            if self.manual_mining is None:  # another JSON-RPC node: does it take evm_setAutomine?
                response = self.w3.provider.make_request("evm_setAutomine", [True])
                self.manual_mining = "error" not in response
            if not self.manual_mining:
                yield batch
                return
            self.rpc("evm_setAutomine", [False])
            try:
                yield batch
            except NodeUnreachable:  # no clean-up requests to a node that is gone or frozen
                raise
            except BaseException:
                self._finish(batch)
                raise
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        """Mine the batch, then auto-mining back on (also when mining failed, unless the node
        is unreachable)."""
        try:
            self._mine_all(batch)
        except NodeUnreachable:
            raise
        except BaseException:
            self.rpc("evm_setAutomine", [True])
            raise
        self.rpc("evm_setAutomine", [True])

    def _mine_all(self, batch: Batch) -> None:
        todo = list(batch.hashes)
        # A block takes as many transactions as fit its gas limit: mine until all are in.
        for _ in range(len(todo)):
            if not todo:
                return
            start = time.perf_counter()
            self.rpc("evm_mine", [])
            read = time.perf_counter()
            found = self.read_receipts(todo)
            self.timings.mine_s += read - start
            self.timings.receipts_s += time.perf_counter() - read
            batch.receipts.update(found)
            todo = [tx_hash for tx_hash in todo if tx_hash not in found]
        if todo:
            raise ChainError(
                f"{len(todo)} transactions of a batch were still not mined after "
                f"{len(batch.hashes)} blocks, e.g. {todo[0].hex()}"
            )


class EngineTransport(Transport):
    """The revm chain in this process (`RevmProvider`), without the JSON-RPC round trip.

    Transactions are handed to the engine as their fields (`RevmEngine.send_fields`: no RLP
    decoding, but the same checks, hashes and sender recovery as for raw bytes) and receipts
    are built straight from the engine's records, in the form web3 gives them
    (`RevmProvider.web3_receipt`). Mining and the evm_* requests go to the provider directly, as
    in `Transport`. What the engine refuses becomes a ChainError with the node's message.
    """

    def __init__(
        self, w3: Web3, lock: AbstractContextManager[Any], timings: ChainTimings | None = None
    ) -> None:
        super().__init__(w3, "revm", lock, timings)
        self.provider = w3.provider
        self.engine = self.provider.engine  # type: ignore[attr-defined]

    def send(self, txs: list[SignedCall]) -> list[bytes | Exception]:
        from sim.chain.revm.transactions import RpcError

        start = time.perf_counter()
        results: list[bytes | Exception] = []
        for tx in txs:
            try:
                results.append(HexBytes(self.engine.send_fields(tx)))
            except RpcError as exc:
                results.append(ChainError(f"{exc.message} (JSON-RPC error {exc.code})"))
        self.timings.send_s += time.perf_counter() - start
        self.timings.txs += len(txs)
        return results

    def dry_run(self, message: TxParams) -> None:
        # straight to the provider; anything but a plain answer goes through web3, which
        # raises the refusal as on every other backend (the call changes no state)
        if "error" in self.provider.make_request(RPCEndpoint("eth_call"), [message, "latest"]):
            super().dry_run(message)

    def estimate_gas(self, message: TxParams) -> int:
        response = self.provider.make_request(RPCEndpoint("eth_estimateGas"), [message, "latest"])
        if "error" in response:
            return super().estimate_gas(message)
        return int(response["result"], 16)

    def send_value(self, sender: str, to: str, wei: int) -> bytes:
        """eth_sendTransaction with the parameters web3 (8) sends for the same call: its
        estimate plus web3's gas buffer of 100,000 (`get_buffered_gas_estimate`), no fees (the
        node's defaults); without web3's request pipeline, about 9 ms a transfer. The tests
        compare the blocks with those of web3's path."""
        limit = self.engine.block_gas_limit
        gas = min(limit, self.engine.estimate_gas(sender, to, b"", wei) + _WEB3_GAS_BUFFER)
        params = {"from": sender, "to": to, "value": hex(wei), "gas": hex(gas)}
        response = self.provider.make_request(RPCEndpoint("eth_sendTransaction"), [params])
        if "error" in response:
            raise ChainError(f"funding {to} failed on the revm backend: {response['error']}")
        return HexBytes(response["result"])

    def _receipt(self, tx_hash: bytes) -> Any:
        found = self.provider.web3_receipt(tx_hash)  # type: ignore[attr-defined]
        return found if found is not None else super()._receipt(tx_hash)

    def read_receipts(self, hashes: list[bytes]) -> dict[bytes, Any]:
        found = {}
        for tx_hash in hashes:
            receipt = self.provider.web3_receipt(tx_hash)  # type: ignore[attr-defined]
            if receipt is not None:
                found[tx_hash] = receipt
            elif tx_hash in self.engine.dropped:  # web3's path raises as it always did
                self.w3.eth.get_transaction_receipt(tx_hash)
        return found
