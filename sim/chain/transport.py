"""How a `Chain` talks to its node when it sends: raw transactions, receipts and mining, one at
a time or as JSON-RPC batches, under the shared lock.

Where the client can mine (the revm provider, hardhat; other JSON-RPC nodes are asked once),
a batch's transactions are sent with auto-mining off and mined into as few blocks as their gas
allows. To an HTTP node the raw transactions go in one JSON-RPC batch request, and their
receipts come back in one, until the node refuses batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from requests.exceptions import HTTPError
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import RPCEndpoint

from sim.chain.errors import ChainError
from sim.chain.reverts import rpc_error_text


@dataclass
class Batch:
    """Transactions sent inside `Transport.batch_mining` and the receipts read while mining."""

    hashes: list[bytes] = field(default_factory=list)
    receipts: dict[bytes, Any] = field(default_factory=dict)


class Transport:
    """Sending, mining and receipts on the node behind `w3`, holding `lock` where needed."""

    def __init__(self, w3: Web3, backend: str, lock: AbstractContextManager[Any]) -> None:
        self.w3 = w3
        self.backend = backend
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

    def rpc(self, method: str, params: list) -> Any:
        """A node-specific request (evm_*); an error answer becomes a ChainError naming it."""
        response = self.w3.provider.make_request(method, params)
        if "error" in response:
            raise ChainError(
                f"{method}{params} failed on the {self.backend} backend: {response['error']}"
            )
        return response.get("result")

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
            except Exception as exc:
                results.append(exc)
        return results

    def read_receipts(self, hashes: list[bytes]) -> dict[bytes, Any]:
        """The receipts of the mined transactions among `hashes` (in one request where it can)."""
        if self.json_batches and len(hashes) > 1:
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
            finally:
                try:
                    self._mine_all(batch)
                finally:
                    self.rpc("evm_setAutomine", [True])

    def _mine_all(self, batch: Batch) -> None:
        todo = list(batch.hashes)
        # A block takes as many transactions as fit its gas limit: mine until all are in.
        for _ in range(len(todo)):
            if not todo:
                return
            self.rpc("evm_mine", [])
            found = self.read_receipts(todo)
            batch.receipts.update(found)
            todo = [tx_hash for tx_hash in todo if tx_hash not in found]
        if todo:
            raise ChainError(
                f"{len(todo)} transactions of a batch were still not mined after "
                f"{len(batch.hashes)} blocks, e.g. {todo[0].hex()}"
            )
