"""The revm chain's JSON-RPC face: a web3 provider answering the methods web3 sends, as a node
would, from a `RevmEngine` in the same process (`Web3(RevmProvider())`). The revm node
(sim/chain/revm/node.py) serves the same answers over HTTP.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.datastructures import AttributeDict
from web3.providers.base import BaseProvider
from web3.types import RPCEndpoint, RPCResponse

from sim.chain.revm.engine import (
    CHAIN_ID,
    COINBASE,
    LATEST_TAGS,
    PRIORITY_FEE_WEI,
    ZERO32,
    Block,
    RevmEngine,
    execution_error,
)
from sim.chain.revm.receipts import (
    create_address,
    hex_bytes,
    hex_data,
    hex_int,
    log_json,
    logs_bloom_bytes,
    quantity,
    receipt_json,
    tx_json,
)
from sim.chain.revm.transactions import (
    RpcError,
    checksum,
    invalid,
)
from sim.chain.signing import TxSigner

__all__ = ["CHAIN_ID", "RevmEngine", "RevmProvider", "RpcError"]

_EMPTY_UNCLES = keccak(rlp.encode([]))


class RevmProvider(BaseProvider):
    """A web3 provider answering JSON-RPC requests from a `RevmEngine` in the same process."""

    def __init__(self, engine: RevmEngine | None = None) -> None:
        super().__init__()
        self.engine = engine or RevmEngine()
        self._signer = TxSigner(None, self.engine.chain_id)  # for eth_sendTransaction
        self._request_id = 0
        self._handlers: dict[str, Callable[..., Any]] = {
            "web3_clientVersion": lambda: "blockhems-revm/pyrevm-0.3.7",
            "net_version": lambda: str(self.engine.chain_id),
            "eth_chainId": lambda: hex_int(self.engine.chain_id),
            "eth_syncing": lambda: False,
            "eth_accounts": lambda: [a.address for a in self.engine.dev_accounts],
            "eth_blockNumber": lambda: hex_int(self.engine.latest.number),
            "eth_gasPrice": lambda: hex_int(PRIORITY_FEE_WEI),
            "eth_maxPriorityFeePerGas": lambda: hex_int(PRIORITY_FEE_WEI),
            "eth_feeHistory": self._fee_history,
            "eth_getBalance": self._get_balance,
            "eth_getTransactionCount": self._get_transaction_count,
            "eth_getCode": self._get_code,
            "eth_getStorageAt": self._get_storage_at,
            "eth_call": self._call,
            "eth_estimateGas": self._estimate_gas,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "eth_sendTransaction": self._send_transaction,
            "eth_getTransactionReceipt": self._get_receipt,
            "eth_getTransactionByHash": self._get_transaction,
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_getLogs": self._get_logs,
            "evm_mine": self._evm_mine,
            "evm_setAutomine": self._set_automine,
        }

        self._signatures = {m: inspect.signature(h) for m, h in self._handlers.items()}

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._request_id += 1
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": self._request_id}
        handler = self._handlers.get(method)
        try:
            if handler is None:
                raise RpcError(
                    -32601,
                    f"method {method} is not supported by the revm backend; supported: "
                    f"{', '.join(sorted(self._handlers))}",
                )
            args = tuple(params or ())
            try:
                self._signatures[method].bind(*args)
            except TypeError as exc:  # checked apart, so a TypeError inside stays a bug
                raise RpcError(-32602, f"invalid parameters for {method}: {exc}") from None
            response["result"] = handler(*args)
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            response["error"] = error
        return response  # type: ignore[return-value]

    # ------------------------------------------------------------------ handlers

    def _state_block(self, ref: Any) -> None:
        """Only the latest state exists; say so instead of answering from the wrong state."""
        if ref is None or ref in LATEST_TAGS:
            return
        if isinstance(ref, dict):
            ref = ref.get("blockNumber", ref.get("blockHash"))
        if isinstance(ref, str) and len(ref) == 66:
            block = self.engine.latest
            if ref.lower() == hex_data(block.hash):
                return
        elif quantity(ref) == self.engine.latest.number:
            return
        raise RpcError(
            -32000,
            f"the revm backend keeps only the latest state (block {self.engine.latest.number}); "
            f"state at block {ref} is not available",
        )

    def _get_balance(self, address: str, block: Any = "latest") -> str:
        self._state_block(block)
        return hex_int(self.engine.balance_nonce(to_checksum_address(address))[0])

    def _get_transaction_count(self, address: str, block: Any = "latest") -> str:
        address = to_checksum_address(address)
        if block == "pending":
            return hex_int(self.engine.pending_nonce(address))
        self._state_block(block)
        return hex_int(self.engine.balance_nonce(address)[1])

    def _get_code(self, address: str, block: Any = "latest") -> str:
        self._state_block(block)
        return hex_data(self.engine.code(to_checksum_address(address)))

    def _get_storage_at(self, address: str, slot: Any, block: Any = "latest") -> str:
        self._state_block(block)
        value = self.engine.storage(to_checksum_address(address), quantity(slot))
        return hex_data(value.to_bytes(32, "big"))

    def _message(self, tx: dict[str, Any]) -> tuple[str, str | None, bytes, int, int | None]:
        sender = checksum(tx["from"]) if tx.get("from") else COINBASE
        to = checksum(tx["to"]) if tx.get("to") else None
        data = hex_bytes(tx.get("input", tx.get("data", "0x")))
        gas = quantity(tx["gas"]) if tx.get("gas") is not None else None
        return sender, to, data, quantity(tx.get("value", 0)), gas

    def _call(self, tx: dict[str, Any], block: Any = "latest", overrides: Any = None) -> str:
        if overrides:
            raise RpcError(-32602, "state overrides are not supported by the revm backend")
        self._state_block(block)
        sender, to, data, value, gas = self._message(tx)
        outcome = self.engine.call(sender, to, data, value, gas)
        if not outcome.success:
            raise execution_error(outcome, gas or self.engine.block_gas_limit)
        return hex_data(outcome.output)

    def _estimate_gas(
        self, tx: dict[str, Any], block: Any = "latest", overrides: Any = None
    ) -> str:
        if overrides:
            raise RpcError(-32602, "state overrides are not supported by the revm backend")
        self._state_block(block)
        sender, to, data, value, gas = self._message(tx)
        return hex_int(self.engine.estimate_gas(sender, to, data, value, gas))

    def _send_raw_transaction(self, raw: Any) -> str:
        return hex_data(self.engine.send_raw_transaction(hex_bytes(raw)))

    def _send_transaction(self, params: dict[str, Any]) -> str:
        """eth_sendTransaction from one of the dev accounts: fill defaults, sign, send."""
        sender = to_checksum_address(params["from"])
        account = self.engine.dev_account(sender)
        to = to_checksum_address(params["to"]) if params.get("to") else None
        data = hex_bytes(params.get("data", params.get("input", "0x")))
        value = quantity(params.get("value", 0))
        tx: dict[str, Any] = {
            "chainId": self.engine.chain_id,
            "nonce": quantity(params["nonce"])
            if "nonce" in params
            else self.engine.pending_nonce(sender),
            "value": value,
            "data": data,
            "gas": quantity(params["gas"])
            if "gas" in params
            else self.engine.estimate_gas(sender, to, data, value),
        }
        if to is not None:
            tx["to"] = to
        if "gasPrice" in params:  # legacy (EIP-155): eth-account signs it
            tx["gasPrice"] = quantity(params["gasPrice"])
            raw = bytes(account.sign_transaction(tx).raw_transaction)
            return hex_data(self.engine.send_raw_transaction(raw))
        tip = quantity(params.get("maxPriorityFeePerGas", PRIORITY_FEE_WEI))
        max_fee = quantity(params.get("maxFeePerGas", tip))
        # the native signer: eth-account's bytes, a twentieth of its time (tests compare)
        signed = self._signer.sign(
            account, tx["nonce"], to, data, tx["gas"], value, priority_fee=tip, max_fee=max_fee
        )
        return hex_data(self.engine.send_fields(signed))

    def _evm_mine(self, timestamp: Any = None) -> str:
        if isinstance(timestamp, dict):  # hardhat also takes {"timestamp": ...}
            timestamp = timestamp.get("timestamp")
        self.engine.mine(None if timestamp is None else quantity(timestamp))
        return "0x0"

    def _set_automine(self, enabled: bool) -> bool:
        self.engine.automine = bool(enabled)
        if enabled and self.engine.pending:
            self.engine.mine()
        return True

    def _fee_history(self, count: Any, newest: Any, percentiles: list[float] | None = None):
        newest_block = self.engine.block(newest)
        if newest_block is None:
            raise RpcError(-32000, f"block {newest} not found")
        n = max(0, min(quantity(count), newest_block.number + 1))
        oldest = newest_block.number - n + 1
        history: dict[str, Any] = {
            "oldestBlock": hex_int(oldest),
            "baseFeePerGas": ["0x0"] * (n + 1),
            "gasUsedRatio": [
                self.engine.blocks[i].gas_used / self.engine.block_gas_limit
                for i in range(oldest, newest_block.number + 1)
            ],
        }
        if percentiles:
            history["reward"] = [[hex_int(PRIORITY_FEE_WEI)] * len(percentiles) for _ in range(n)]
        return history

    def _get_receipt(self, tx_hash: Any) -> dict[str, Any] | None:
        key = hex_bytes(tx_hash)
        mined = self.engine.txs.get(key)
        if mined is None:
            if key in self.engine.dropped:
                raise invalid(
                    f"transaction 0x{key.hex()} was dropped, not mined: {self.engine.dropped[key]}"
                )
            return None  # unknown, or still pending (auto-mine off)
        return receipt_json(mined)

    def web3_receipt(self, tx_hash: bytes) -> AttributeDict | None:
        """The receipt of a mined transaction as web3's `get_transaction_receipt` gives it
        (HexBytes, ints, checksummed addresses), built from the engine without the JSON round
        trip; None if the transaction is not mined (pending, dropped or unknown)."""
        mined = self.engine.txs.get(bytes(tx_hash))
        if mined is None:
            return None
        tx, outcome = mined.tx, mined.outcome
        block_hash, hash_, number, index = (
            HexBytes(mined.block_hash),
            HexBytes(tx.hash),
            mined.block_number,
            mined.index,
        )
        logs = [
            AttributeDict(
                {
                    "address": log.address,
                    "topics": [HexBytes(t) for t in log.topics],
                    "data": HexBytes(log.data),
                    "blockNumber": number,
                    "blockHash": block_hash,
                    "transactionHash": hash_,
                    "transactionIndex": index,
                    "logIndex": mined.first_log_index + i,
                    "removed": False,
                }
            )
            for i, log in enumerate(outcome.logs)
        ]
        return AttributeDict(
            {
                "transactionHash": hash_,
                "transactionIndex": index,
                "blockHash": block_hash,
                "blockNumber": number,
                "from": tx.sender,
                "to": tx.to,
                "type": tx.type,
                "status": 1 if outcome.success else 0,
                "gasUsed": outcome.gas_used,
                "cumulativeGasUsed": mined.cumulative_gas,
                "effectiveGasPrice": tx.effective_gas_price,
                "contractAddress": outcome.contract_address
                or (create_address(tx.sender, tx.nonce) if tx.to is None else None),
                "logs": logs,
                "logsBloom": HexBytes(logs_bloom_bytes(outcome.logs)),
            }
        )

    def _get_transaction(self, tx_hash: Any) -> dict[str, Any] | None:
        key = hex_bytes(tx_hash)
        mined = self.engine.txs.get(key)
        if mined is not None:
            return tx_json(mined.tx, mined)
        pending = self.engine.pending_tx(key)
        return tx_json(pending, None) if pending else None

    def _block_json(self, block: Block | None, full: bool) -> dict[str, Any] | None:
        if block is None:
            return None
        return {
            "number": hex_int(block.number),
            "hash": hex_data(block.hash),
            "parentHash": hex_data(block.parent_hash),
            "timestamp": hex_int(block.timestamp),
            "gasLimit": hex_int(self.engine.block_gas_limit),
            "gasUsed": hex_int(block.gas_used),
            "baseFeePerGas": "0x0",
            "miner": COINBASE,
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "nonce": "0x0000000000000000",
            "mixHash": hex_data(ZERO32),
            "sha3Uncles": hex_data(_EMPTY_UNCLES),
            "logsBloom": block.logs_bloom,
            "transactionsRoot": hex_data(ZERO32),
            "stateRoot": hex_data(ZERO32),
            "receiptsRoot": hex_data(ZERO32),
            "extraData": "0x",
            "size": "0x0",
            "uncles": [],
            "withdrawals": [],
            "transactions": [tx_json(m.tx, m) if full else hex_data(m.tx.hash) for m in block.txs],
        }

    def _get_block_by_number(self, ref: Any, full: bool = False) -> dict[str, Any] | None:
        return self._block_json(self.engine.block(ref), full)

    def _get_block_by_hash(self, block_hash: Any, full: bool = False) -> dict[str, Any] | None:
        key = hex_bytes(block_hash)
        return self._block_json(next((b for b in self.engine.blocks if b.hash == key), None), full)

    def _get_logs(self, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        if criteria.get("blockHash"):
            key = hex_bytes(criteria["blockHash"])
            blocks = [b for b in self.engine.blocks if b.hash == key]
        else:
            first = self.engine.block(criteria.get("fromBlock", "latest"))
            last = self.engine.block(criteria.get("toBlock", "latest"))
            if first is None or last is None:
                return []
            blocks = self.engine.blocks[first.number : last.number + 1]
        address = criteria.get("address")
        addresses = (
            None
            if address is None
            else {
                to_checksum_address(a) for a in ([address] if isinstance(address, str) else address)
            }
        )
        wanted: list[set[bytes] | None] = [
            None if t is None else {hex_bytes(x) for x in ([t] if isinstance(t, str) else t)}
            for t in criteria.get("topics") or []
        ]
        found = []
        for block in blocks:
            for mined in block.txs:
                for i, log in enumerate(mined.outcome.logs):
                    if addresses is not None and log.address not in addresses:
                        continue
                    if len(wanted) > len(log.topics) or any(
                        w is not None and log.topics[k] not in w for k, w in enumerate(wanted)
                    ):
                        continue
                    found.append(log_json(mined, i, log))
        return found
