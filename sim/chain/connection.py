"""A connection to an Ethereum chain: embedded eth-tester (py-evm) or any JSON-RPC node.

The same code path serves both backends: every party has a local key, transactions are signed
locally and sent raw, and every transaction's gas and latency is recorded. Chain time is
controlled through `set_time` so the co-simulation can place protocol phases at simulated
seconds (eth-tester's time travel or the node's `evm_mine` with a timestamp, as hardhat
supports).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError

from sim.chain.artifacts import decode_revert

Backend = Literal["embedded", "rpc"]
# eth-tester raises its own exception for custom errors; JSON-RPC nodes give web3's.
_REVERTS = (ContractCustomError, ContractLogicError, TransactionFailed)

GWEI = 10**9
_MAX_FEE_WEI = 50 * GWEI
_TIP_WEI = 1 * GWEI
_FUNDING_WEI = 10 * 10**18  # ~5,000 transactions of 40k gas at the 50 gwei cap


class ChainError(RuntimeError):
    """The chain could not be reached or used."""


class ContractRevert(RuntimeError):
    """A contract call was refused; `error` is the Solidity custom error's name."""

    def __init__(self, label: str, error: str, args: dict[str, Any]) -> None:
        self.label = label
        self.error = error
        self.args_by_name = args
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        super().__init__(f"{label} refused by the contract: {error}({shown})")


@dataclass(frozen=True)
class TxRecord:
    """One mined transaction: what it was, what it cost and how long it took."""

    label: str  # e.g. "private.submitRange"
    sender: str
    gas_used: int
    latency_s: float  # wall time from sending to receipt
    block: int
    tx_hash: str
    round: int | None = None  # protocol round, where the call belongs to one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Chain:
    """A web3 connection plus local signing, time control and a transaction log."""

    def __init__(self, w3: Web3, backend: Backend, tester: Any = None) -> None:
        self.w3 = w3
        self.backend = backend
        self.chain_id = w3.eth.chain_id
        self.records: list[TxRecord] = []
        self._tester = tester
        self._nonces: dict[str, int] = {}
        self._gas_limits: dict[str, int] = {}
        self._timestamp_offset = 0

    # ------------------------------------------------------------------ accounts

    def new_accounts(self, count: int, seed: str, fund: bool = True) -> list[LocalAccount]:
        """Deterministic local accounts (keccak(seed, i) as key), funded from the node's."""
        accounts = [Account.from_key(keccak(text=f"blockhems/{seed}/{i}")) for i in range(count)]
        if fund:
            self.fund([a.address for a in accounts])
        return accounts

    def fund(self, addresses: Sequence[str], wei: int = _FUNDING_WEI) -> None:
        funder = self.w3.eth.accounts[0]
        hashes = [
            self.w3.eth.send_transaction({"from": funder, "to": a, "value": wei}) for a in addresses
        ]
        for h in hashes:
            self.w3.eth.wait_for_transaction_receipt(h)

    # ------------------------------------------------------------------ time

    def now(self) -> int:
        """Timestamp of the latest block (s)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_time(self, timestamp: int) -> None:
        """Mine a block at `timestamp` (s); later blocks follow from there."""
        if timestamp <= self.now():
            return
        if self._tester is not None:
            self._tester.time_travel(timestamp)
        else:
            self.w3.provider.make_request("evm_mine", [timestamp])

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
        gas_limit = self._gas_limits.get(label)
        try:
            if gas_limit is None:
                estimate = fn.estimate_gas({"from": account.address})
                gas_limit = self._gas_limits[label] = int(estimate * 1.5) + 50_000
            else:
                fn.call({"from": account.address})
        except _REVERTS as exc:
            raise self._revert(label, fn, exc) from None
        tx = fn.build_transaction(self._tx_fields(account.address, gas_limit))
        receipt = self._send_signed(account, tx)
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

    def _tx_fields(self, sender: str, gas_limit: int) -> dict:
        nonce = self._nonces.get(sender)
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(sender)
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
) -> Chain:
    """Open a chain: `embedded` (eth-tester + py-evm, in process) or `rpc` at `url`."""
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
        chain = Chain(w3, "rpc")
    else:
        raise ChainError(f"unknown chain backend {backend!r}: use 'embedded' or 'rpc'")
    return chain
