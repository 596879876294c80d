"""A fast embedded chain: revm (the Rust EVM, through pyrevm) behind a web3 JSON-RPC provider.

eth-tester + py-evm spends about 60 ms per transaction, which dominated the co-simulation's wall
time. revm executes one of this project's contract calls in about 30 microseconds; what remains
per transaction is Python: signing, RLP, signature recovery and web3's request pipeline. Every
client (PrivateAggregation, DSOClient, HomeClient, SeedBaselineClient) runs unchanged on it,
because `RevmProvider` answers the JSON-RPC methods web3 sends, as a node would.

How the engine uses pyrevm 0.3.7, and why:

- pyrevm keeps all state in revm's journal and never finalizes it between calls. An account or a
  storage slot touched once would stay *warm* for every later call (EIP-2929: 100 gas instead of
  2,100/2,600), and a slot's "original value" for SSTORE pricing (EIP-2200/3529) would be the
  value first loaded rather than the value at the start of the transaction, so gas would differ
  from every real node. The engine therefore runs each execution inside a journal checkpoint,
  reads what it changed (accounts from `journal_state`, slots from the journal's StorageChange
  entries), reverts the checkpoint and writes the changes into revm's database
  (`insert_account_info`; `insert_account_storage` each in a checkpoint of its own, because it
  writes the database only while the account is out of the journal). Every transaction thus
  starts from a cold journal, as on py-evm and hardhat. Reads (eth_getStorageAt,
  eth_getBalance, ...) run inside a checkpoint too, so they warm nothing.
- pyrevm charges no gas fee on message calls (it does on deployments) and has no way to credit a
  fee back, so the engine executes with gas price 0 and does the accounting itself: it checks
  `balance >= gas_limit * max_fee + value` when a transaction arrives (as geth does), sets the
  sender's nonce and charges `gasUsed * effective_gas_price`. The base fee is 0 (pyrevm forces
  it to 0 in the EVM, so the BASEFEE opcode says 0 as well); the effective gas price is the
  priority fee (capped by the max fee) and is burnt (no coinbase reward). The GASPRICE opcode
  therefore reads 0; none of this project's contracts use it.
- Transactions with an access list are refused: pyrevm preloads access-list entries into the
  journal without journaling them, so they would stay warm for all later transactions.
- The engine reads the slots a transaction touched from the debug print of revm's journal,
  because pyrevm exposes no other way; hence the exact pin `pyrevm==0.3.7` (revm 8).
- The fork is Cancun, as the contracts are compiled for and the hardhat node runs (eth-tester
  runs Prague, whose changes cost these contracts no gas: tests/test_chain_revm.py compares).

Chain model: deterministic dev accounts funded at genesis (eth_accounts, eth_sendTransaction),
raw transactions signed by the parties (EIP-1559 type 2, EIP-2930 type 1 and EIP-155 legacy; the
sender is recovered from the signature, chain id and nonce are checked). Blocks are mined as on
hardhat: auto-mine puts each transaction in its own block; `evm_setAutomine false` queues
transactions until `evm_mine`, which takes them in arrival order while a transaction's gas limit
fits the gas the block has left (as geth), and leaves the rest for the next block. A block's
timestamp is the one given to `evm_mine` or else its parent's plus one second, so runs are
reproducible and chain time moves only where the co-simulation moves it. Only the latest state
is kept (no historical eth_call). Block hashes are a keccak over (parent hash, number,
timestamp, transaction hashes); state, transaction and receipt roots are not computed (reported
as zero).
"""

from __future__ import annotations

import inspect
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_bloom import BloomFilter
from eth_keys import keys
from eth_utils import keccak, to_canonical_address, to_checksum_address
from pyrevm import EVM, AccountInfo, BlockEnv, CfgEnv, Env
from web3.providers.base import BaseProvider
from web3.types import RPCEndpoint, RPCResponse

from sim.errors import BlockhemsError

CHAIN_ID = 1337
SPEC_ID = "Cancun"  # revm's SpecId name (case-sensitive; an unknown name silently means latest)
BLOCK_GAS_LIMIT = 60_000_000  # as the pinned hardhat (2.29) node
DEV_ACCOUNT_COUNT = 10
DEV_BALANCE_WEI = 10**27  # 1e9 ETH each, as in contracts/hardhat.config.js
PRIORITY_FEE_WEI = 10**9  # default tip for eth_sendTransaction and eth_maxPriorityFeePerGas
COINBASE = "0x0000000000000000000000000000000000000000"
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_EMPTY_UNCLES = keccak(rlp.encode([]))
_ZERO32 = bytes(32)
_KECCAK_EMPTY = keccak(b"")
_MAX_INITCODE = 2 * 24_576  # EIP-3860
_LATEST_TAGS = ("latest", "pending", "safe", "finalized")

# One journal entry per SSTORE and per first SLOAD of a slot; keys print in decimal. The \b keeps
# TransientStorageChange (EIP-1153, reset after every transaction) out.
_STORAGE_CHANGE = re.compile(
    r"\bStorageChange \{ address: (0x[0-9a-fA-F]{40}), key: (0x[0-9a-fA-F]+|\d+),"
)
_REVERT_OUTPUT = re.compile(r"output: (0x[0-9a-fA-F]*)")


class RpcError(BlockhemsError):
    """A JSON-RPC error answer: code, message and optional data (revert bytes as hex)."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _invalid(message: str) -> RpcError:
    return RpcError(-32000, message)


# ---------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class SignedTx:
    """A decoded, signature-checked transaction."""

    hash: bytes
    type: int  # 0 legacy (EIP-155), 1 EIP-2930, 2 EIP-1559
    sender: str
    chain_id: int
    nonce: int
    to: str | None  # None creates a contract
    value: int
    data: bytes
    gas: int
    max_fee: int  # gasPrice for types 0 and 1
    priority_fee: int  # equals gasPrice for types 0 and 1
    v: int
    r: int
    s: int

    @property
    def effective_gas_price(self) -> int:
        # base fee 0: a type-2 transaction pays its tip, capped by its max fee
        return min(self.max_fee, self.priority_fee)

    @property
    def max_cost(self) -> int:
        return self.gas * self.max_fee + self.value


def _int(item: bytes) -> int:
    return int.from_bytes(item, "big")


def _to(item: bytes) -> str | None:
    if not item:
        return None
    if len(item) != 20:
        raise _invalid(f"transaction 'to' has {len(item)} bytes, not 20")
    return to_checksum_address(item)


def decode_raw_transaction(raw: bytes, chain_id: int) -> SignedTx:
    """Decode a signed raw transaction, check its chain id and signature, recover the sender."""
    if not raw:
        raise _invalid("empty raw transaction")
    try:
        if raw[0] == 2:
            f = rlp.decode(raw[1:])
            if len(f) != 12:
                raise _invalid(f"an EIP-1559 transaction has 12 fields, this one {len(f)}")
            access_list, parity = f[8], _int(f[9])
            tx_chain, signing = _int(f[0]), keccak(b"\x02" + rlp.encode(f[:9]))
            fields = dict(
                type=2,
                nonce=_int(f[1]),
                priority_fee=_int(f[2]),
                max_fee=_int(f[3]),
                gas=_int(f[4]),
                to=_to(f[5]),
                value=_int(f[6]),
                data=bytes(f[7]),
                v=parity,
                r=_int(f[10]),
                s=_int(f[11]),
            )
        elif raw[0] == 1:
            f = rlp.decode(raw[1:])
            if len(f) != 11:
                raise _invalid(f"an EIP-2930 transaction has 11 fields, this one {len(f)}")
            access_list, parity = f[7], _int(f[8])
            tx_chain, signing = _int(f[0]), keccak(b"\x01" + rlp.encode(f[:8]))
            price = _int(f[2])
            fields = dict(
                type=1,
                nonce=_int(f[1]),
                priority_fee=price,
                max_fee=price,
                gas=_int(f[3]),
                to=_to(f[4]),
                value=_int(f[5]),
                data=bytes(f[6]),
                v=parity,
                r=_int(f[9]),
                s=_int(f[10]),
            )
        elif raw[0] >= 0xC0:
            f = rlp.decode(raw)
            if len(f) != 9:
                raise _invalid(f"a legacy transaction has 9 fields, this one {len(f)}")
            v = _int(f[6])
            if v in (27, 28):
                raise _invalid("unprotected legacy transaction (no EIP-155 chain id) refused")
            tx_chain, parity, access_list = (v - 35) // 2, (v - 35) % 2, []
            signing = keccak(rlp.encode(f[:6] + [tx_chain, 0, 0]))
            price = _int(f[1])
            fields = dict(
                type=0,
                nonce=_int(f[0]),
                priority_fee=price,
                max_fee=price,
                gas=_int(f[2]),
                to=_to(f[3]),
                value=_int(f[4]),
                data=bytes(f[5]),
                v=v,
                r=_int(f[7]),
                s=_int(f[8]),
            )
        else:
            raise _invalid(f"transaction type {raw[0]} is not supported by the revm backend")
    except rlp.DecodingError as exc:
        raise _invalid(f"raw transaction is not valid RLP: {exc}") from None
    if tx_chain != chain_id:
        raise _invalid(f"invalid chain id {tx_chain}: this chain's id is {chain_id}")
    if access_list:
        # pyrevm would preload the entries unjournaled; they would stay warm for every later tx.
        raise _invalid("transactions with an access list are not supported by the revm backend")
    r, s = fields["r"], fields["s"]
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2) or parity not in (0, 1):
        raise _invalid("invalid transaction signature (r, s out of range or high s, EIP-2)")
    try:
        public = keys.Signature(vrs=(parity, r, s)).recover_public_key_from_msg_hash(signing)
    except Exception as exc:  # eth_keys raises several types for unrecoverable signatures
        raise _invalid(f"cannot recover the transaction's sender: {exc}") from None
    return SignedTx(
        hash=keccak(raw), sender=public.to_checksum_address(), chain_id=tx_chain, **fields
    )


def intrinsic_gas(tx: SignedTx) -> int:
    """Gas charged before execution (Cancun): base, calldata and, for a creation, init code."""
    zeros = tx.data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(tx.data) - zeros)
    if tx.to is None:
        gas += 32_000 + 2 * ((len(tx.data) + 31) // 32)  # EIP-3860 init code words
    return gas


# ---------------------------------------------------------------------------- execution


@dataclass(frozen=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """The result of one execution."""

    success: bool
    gas_used: int  # after refunds, as in a receipt
    gas_spent: int  # before refunds: the least gas limit that lets it run this way
    output: bytes  # return data, or the revert data of a failed execution
    logs: tuple[Log, ...] = ()
    contract_address: str | None = None
    halt: str | None = None  # why an exceptional halt (out of gas, invalid opcode) stopped it


@dataclass
class MinedTx:
    tx: SignedTx
    block_number: int
    index: int
    outcome: Outcome
    cumulative_gas: int
    first_log_index: int
    block_hash: bytes = b""


@dataclass
class Block:
    number: int
    timestamp: int
    parent_hash: bytes
    txs: list[MinedTx] = field(default_factory=list)
    hash: bytes = b""

    @property
    def gas_used(self) -> int:
        return self.txs[-1].cumulative_gas if self.txs else 0


class RevmEngine:
    """State, transaction pool and blocks of an in-process chain on revm."""

    def __init__(
        self,
        chain_id: int = CHAIN_ID,
        genesis_timestamp: int | None = None,
        block_gas_limit: int = BLOCK_GAS_LIMIT,
        dev_accounts: int = DEV_ACCOUNT_COUNT,
    ) -> None:
        self.chain_id = chain_id
        self.block_gas_limit = block_gas_limit
        genesis = Block(
            0, int(time.time()) if genesis_timestamp is None else genesis_timestamp, _ZERO32
        )
        genesis.hash = _block_hash(genesis)
        self.blocks: list[Block] = [genesis]
        self.evm = EVM(
            env=Env(cfg=CfgEnv(chain_id=chain_id), block=self._block_env(genesis)),
            gas_limit=block_gas_limit,
            spec_id=SPEC_ID,
        )
        self.dev_accounts: list[LocalAccount] = [
            Account.from_key(keccak(text=f"blockhems/revm/dev/{i}")) for i in range(dev_accounts)
        ]
        self._dev_by_address = {a.address: a for a in self.dev_accounts}
        for account in self.dev_accounts:
            self.evm.insert_account_info(account.address, AccountInfo(balance=DEV_BALANCE_WEI))
        self.automine = True
        self.pending: deque[SignedTx] = deque()
        self._queued: dict[str, list[SignedTx]] = {}  # pending transactions by sender
        self._pending_by_hash: dict[bytes, SignedTx] = {}
        self.txs: dict[bytes, MinedTx] = {}
        self._codes: dict[str, bytes] = {}  # runtime code of each contract, by address
        self.dropped: dict[bytes, str] = {}  # transactions left out of blocks, with the reason

    # ------------------------------------------------------------------ state reads

    @contextmanager
    def _checkpoint(self) -> Iterator[None]:
        """Run EVM work that must leave the journal as it was (cold, unchanged)."""
        checkpoint = self.evm.snapshot()
        try:
            yield
        finally:
            self.evm.revert(checkpoint)
            self.evm.reset_transient_storage()

    def balance_nonce(self, address: str) -> tuple[int, int]:
        with self._checkpoint():
            info = self.evm.basic(address)
            return int(info.balance), int(info.nonce)

    def pending_nonce(self, address: str) -> int:
        return self.balance_nonce(address)[1] + len(self._queued.get(address, ()))

    def pending_tx(self, tx_hash: bytes) -> SignedTx | None:
        return self._pending_by_hash.get(tx_hash)

    def code(self, address: str) -> bytes:
        # revm returns analysed (padded) code; the unpadded one is kept from its creation
        return self._codes.get(address, b"")

    def storage(self, address: str, slot: int) -> int:
        with self._checkpoint():
            return int(self.evm.storage(address, slot))

    @property
    def latest(self) -> Block:
        return self.blocks[-1]

    # ------------------------------------------------------------------ execution

    def call(
        self, sender: str, to: str | None, data: bytes, value: int = 0, gas: int | None = None
    ) -> Outcome:
        """Execute against the latest state and forget the changes (eth_call)."""
        return self._execute(sender, to, data, value, gas or self.block_gas_limit, commit=False)[0]

    def estimate_gas(
        self, sender: str, to: str | None, data: bytes, value: int = 0, cap: int | None = None
    ) -> int:
        """The least gas limit with which the execution succeeds (as geth's binary search)."""
        cap = cap or self.block_gas_limit
        first = self.call(sender, to, data, value, cap)
        if not first.success:
            raise _execution_error(first, cap)
        low = first.gas_spent  # refunds are paid after execution, so this limit usually suffices
        if self.call(sender, to, data, value, low).success:
            return low
        high = cap  # the 63/64 rule (EIP-150) can need more than what was spent
        while high - low > 1:
            mid = (low + high) // 2
            if self.call(sender, to, data, value, mid).success:
                high = mid
            else:
                low = mid
        return high

    def _execute(
        self, sender: str, to: str | None, data: bytes, value: int, gas: int, commit: bool
    ) -> tuple[Outcome, dict[str, AccountInfo], dict[tuple[str, int], int]]:
        """Run one execution in a checkpoint; with commit, return the changes it made."""
        accounts: dict[str, AccountInfo] = {}
        slots: dict[tuple[str, int], int] = {}
        with self._checkpoint():
            try:
                if to is None:
                    created: str | None = self.evm.deploy(
                        sender, data, value=value, gas=gas, gas_price=0
                    )
                    output = b""
                else:
                    created = None
                    output = bytes(
                        self.evm.message_call(sender, to, data, value=value, gas=gas, gas_price=0)
                    )
            except RuntimeError as exc:
                result = self.evm.result
                if result is None:  # refused before execution (funds, intrinsic gas, ...)
                    raise _invalid(f"transaction refused by the EVM: {exc}") from None
                found = _REVERT_OUTPUT.search(str(exc))
                revert = bytes.fromhex(found.group(1)[2:]) if found else b""
                return (
                    Outcome(
                        success=False,
                        gas_used=int(result.gas_used),
                        gas_spent=int(result.gas_used),
                        output=revert,
                        halt=None if result.reason == "Revert" else str(result.reason),
                    ),
                    accounts,
                    slots,
                )
            result = self.evm.result
            logs = tuple(
                Log(
                    _checksum(log.address),
                    tuple(bytes(t) for t in log.data[0]),
                    bytes(log.data[1]),
                )
                for log in result.logs
            )
            outcome = Outcome(
                success=True,
                gas_used=int(result.gas_used),
                gas_spent=int(result.gas_used) + int(result.gas_refunded),
                output=output,
                logs=logs,
                contract_address=to_checksum_address(created) if created else None,
            )
            if commit:
                for address, info in self.evm.journal_state.items():
                    accounts[_checksum(address)] = info
                journal = self.evm.journal_str
                # the entries come last; the state printed before them holds whole bytecodes
                entries = journal[journal.rfind(", journal: [") :]
                for address, key in _STORAGE_CHANGE.findall(entries):
                    slot = (_checksum(address), int(key, 0))
                    if slot not in slots:
                        slots[slot] = int(self.evm.storage(slot[0], slot[1]))
        return outcome, accounts, slots

    def _apply(self, tx: SignedTx) -> Outcome:
        """Execute a mined transaction and write its effects, fee and nonce into the state."""
        balance, nonce = self.balance_nonce(tx.sender)
        if nonce != tx.nonce or balance < tx.max_cost:
            # Checked against the pool on arrival; only an earlier dropped transaction of the
            # same sender (a nonce gap) gets here.
            raise _invalid(
                f"no longer valid when mined: nonce {tx.nonce} (account at {nonce}), "
                f"cost {tx.max_cost} wei (balance {balance})"
            )
        outcome, accounts, slots = self._execute(
            tx.sender, tx.to, tx.data, tx.value, tx.gas, commit=True
        )
        after = accounts.pop(tx.sender, None)
        fee = outcome.gas_used * tx.effective_gas_price
        # Senders are externally owned (EIP-3607), so they keep no code.
        writes = {
            tx.sender: AccountInfo(
                balance=(after.balance if after is not None else balance) - fee,
                nonce=tx.nonce + 1,
            )
        }
        for address, info in accounts.items():
            writes[address] = self._account_to_store(address, info)
        for address, info in writes.items():
            self.evm.insert_account_info(address, info)
        for (address, slot), value in slots.items():
            # pyrevm writes a slot to the database only while its account is not in the
            # journal; otherwise into the journal, where it would stay warm with a wrong
            # original value. Loading the account for the write is undone by the checkpoint.
            with self._checkpoint():
                self.evm.insert_account_storage(address, slot, value)
        return outcome

    def _account_to_store(self, address: str, info: AccountInfo) -> AccountInfo:
        """The database entry for an account as the journal left it.

        The journal holds code as revm analysed it: padded with zero bytes, and an empty code
        as one zero byte. Storing that back would give an externally owned account code (and
        EIP-3607 would then refuse its transactions) and change every contract's EXTCODESIZE,
        so code is stored once, unpadded, when a contract appears; afterwards the database
        finds it by hash.
        """
        code_hash = bytes(info.code_hash) if info.code_hash else _KECCAK_EMPTY
        if code_hash == _KECCAK_EMPTY:
            return AccountInfo(balance=info.balance, nonce=info.nonce)
        if address in self._codes:
            return AccountInfo(balance=info.balance, nonce=info.nonce, code_hash=code_hash)
        code = _original_code(bytes(info.code or b""), code_hash)
        self._codes[address] = code
        return AccountInfo(balance=info.balance, nonce=info.nonce, code_hash=code_hash, code=code)

    # ------------------------------------------------------------------ transactions and blocks

    def send_raw_transaction(self, raw: bytes) -> bytes:
        tx = decode_raw_transaction(raw, self.chain_id)
        if tx.hash in self.txs or tx.hash in self._pending_by_hash:
            raise _invalid(f"already known: transaction {tx.hash.hex()}")
        balance, nonce = self.balance_nonce(tx.sender)
        queued = self._queued.get(tx.sender, [])
        expected = nonce + len(queued)
        if tx.nonce < expected:
            raise _invalid(f"nonce too low: {tx.sender} sent nonce {tx.nonce}, next is {expected}")
        if tx.nonce > expected:
            raise _invalid(
                f"nonce too high: {tx.sender} sent nonce {tx.nonce}, next is {expected} "
                "(the revm backend keeps no queue of future nonces)"
            )
        if tx.gas < intrinsic_gas(tx):
            raise _invalid(f"intrinsic gas too low: gas limit {tx.gas}, needs {intrinsic_gas(tx)}")
        if tx.to is None and len(tx.data) > _MAX_INITCODE:
            raise _invalid(
                f"max initcode size exceeded: {len(tx.data)} bytes, limit {_MAX_INITCODE}"
            )
        if tx.gas > self.block_gas_limit:
            raise _invalid(f"gas limit {tx.gas} exceeds the block gas limit {self.block_gas_limit}")
        if tx.priority_fee > tx.max_fee:
            raise _invalid(
                f"max priority fee per gas {tx.priority_fee} higher than max fee {tx.max_fee}"
            )
        # An account's balance only falls through its own transactions, so checking against the
        # pool's earlier ones here guarantees the transaction is still payable when mined.
        if balance < tx.max_cost + sum(t.max_cost for t in queued):
            raise _invalid(
                f"insufficient funds for gas * price + value: {tx.sender} has {balance} wei, "
                f"needs {tx.max_cost} (plus {sum(t.max_cost for t in queued)} queued)"
            )
        self.pending.append(tx)
        self._queued.setdefault(tx.sender, []).append(tx)
        self._pending_by_hash[tx.hash] = tx
        if self.automine:
            self.mine()
            if tx.hash in self.dropped:
                raise _invalid(f"transaction dropped: {self.dropped[tx.hash]}")
        return tx.hash

    def send_transaction(self, params: dict[str, Any]) -> bytes:
        """eth_sendTransaction from one of the dev accounts: fill defaults, sign, send."""
        sender = to_checksum_address(params["from"])
        account = self._dev_by_address.get(sender)
        if account is None:
            raise _invalid(f"account {sender} is not one of this node's dev accounts")
        to = to_checksum_address(params["to"]) if params.get("to") else None
        data = _hex_bytes(params.get("data", params.get("input", "0x")))
        value = _quantity(params.get("value", 0))
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": _quantity(params["nonce"])
            if "nonce" in params
            else self.pending_nonce(sender),
            "value": value,
            "data": data,
            "gas": _quantity(params["gas"])
            if "gas" in params
            else self.estimate_gas(sender, to, data, value),
        }
        if to is not None:
            tx["to"] = to
        if "gasPrice" in params:
            tx["gasPrice"] = _quantity(params["gasPrice"])
        else:
            tip = _quantity(params.get("maxPriorityFeePerGas", PRIORITY_FEE_WEI))
            tx["maxPriorityFeePerGas"] = tip
            tx["maxFeePerGas"] = _quantity(params.get("maxFeePerGas", tip))
        return self.send_raw_transaction(bytes(account.sign_transaction(tx).raw_transaction))

    def mine(self, timestamp: int | None = None) -> Block:
        """Seal one block with the pending transactions that fit its gas limit."""
        parent = self.latest
        if timestamp is None:
            timestamp = parent.timestamp + 1
        elif timestamp <= parent.timestamp:
            raise _invalid(
                f"block timestamp {timestamp} is not after the latest block's {parent.timestamp}"
            )
        block = Block(parent.number + 1, timestamp, parent.hash)
        self.evm.set_block_env(self._block_env(block))
        cumulative = log_index = 0
        while self.pending and cumulative + self.pending[0].gas <= self.block_gas_limit:
            tx = self.pending.popleft()
            del self._pending_by_hash[tx.hash]
            queued = self._queued[tx.sender]
            queued.pop(0)  # a sender's transactions leave the pool in nonce order
            if not queued:
                del self._queued[tx.sender]
            try:
                outcome = self._apply(tx)
            except RpcError as exc:
                # The EVM refused to run it (a case the arrival checks missed): leave it out
                # of the block, as a node would, and say why when its receipt is asked for.
                self.dropped[tx.hash] = exc.message
                continue
            cumulative += outcome.gas_used
            block.txs.append(
                MinedTx(tx, block.number, len(block.txs), outcome, cumulative, log_index)
            )
            log_index += len(outcome.logs)
        block.hash = _block_hash(block)
        for mined in block.txs:
            mined.block_hash = block.hash
            self.txs[mined.tx.hash] = mined
        self.blocks.append(block)
        return block

    def block(self, ref: str | int) -> Block | None:
        if isinstance(ref, int):
            number = ref
        elif ref in _LATEST_TAGS:
            number = self.latest.number
        elif ref == "earliest":
            number = 0
        else:
            number = _quantity(ref)
        return self.blocks[number] if 0 <= number < len(self.blocks) else None

    def _block_env(self, block: Block) -> BlockEnv:
        return BlockEnv(
            number=block.number,
            coinbase=COINBASE,
            timestamp=block.timestamp,
            difficulty=0,
            prevrandao=_ZERO32,
            basefee=0,
            gas_limit=self.block_gas_limit,
            excess_blob_gas=0,  # Cancun requires a value
        )


def _original_code(analysed: bytes, code_hash: bytes) -> bytes:
    """The code whose hash is `code_hash`: `analysed` without the zero padding revm appended."""
    code = analysed
    for _ in range(34):  # revm pads with at most 33 bytes (a STOP and a PUSH32's operand)
        if keccak(code) == code_hash:
            return code
        if not code or code[-1] != 0:
            break
        code = code[:-1]
    raise RuntimeError(
        f"cannot recover a contract's code from revm's analysed copy (hash 0x{code_hash.hex()})"
    )


@lru_cache(maxsize=65536)
def _checksum(address: str) -> str:
    """EIP-55 form of an address revm printed (a keccak each time uncached: hot per slot)."""
    return to_checksum_address(address)


def _block_hash(block: Block) -> bytes:
    return keccak(
        rlp.encode(
            [block.parent_hash, block.number, block.timestamp, [m.tx.hash for m in block.txs]]
        )
    )


def _execution_error(outcome: Outcome, gas: int) -> RpcError:
    if outcome.halt is not None:
        if outcome.halt.startswith("OutOfGas"):
            return RpcError(-32000, f"gas required exceeds allowance ({gas})")
        return RpcError(-32000, f"execution halted: {outcome.halt}")
    # As geth: code 3 with the revert bytes, which web3 turns into ContractCustomError.
    return RpcError(3, "execution reverted", "0x" + outcome.output.hex())


# ---------------------------------------------------------------------------- JSON-RPC encoding


def _quantity(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise RpcError(-32602, f"expected a hex quantity, got {value!r}")


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return bytes.fromhex(value[2:])
    raise RpcError(-32602, f"expected hex data, got {value!r}")


def _hex(value: int) -> str:
    return hex(value)


def _data(value: bytes) -> str:
    return "0x" + value.hex()


def _bloom(logs: Iterator[Log] | tuple[Log, ...]) -> str:
    bloom = BloomFilter()
    for log in logs:
        bloom.add(to_canonical_address(log.address))
        for topic in log.topics:
            bloom.add(topic)
    return "0x" + int(bloom).to_bytes(256, "big").hex()


class RevmProvider(BaseProvider):
    """A web3 provider answering JSON-RPC requests from a `RevmEngine` in the same process."""

    def __init__(self, engine: RevmEngine | None = None) -> None:
        super().__init__()
        self.engine = engine or RevmEngine()
        self._request_id = 0
        self._handlers: dict[str, Callable[..., Any]] = {
            "web3_clientVersion": lambda: "blockhems-revm/pyrevm-0.3.7",
            "net_version": lambda: str(self.engine.chain_id),
            "eth_chainId": lambda: _hex(self.engine.chain_id),
            "eth_syncing": lambda: False,
            "eth_accounts": lambda: [a.address for a in self.engine.dev_accounts],
            "eth_blockNumber": lambda: _hex(self.engine.latest.number),
            "eth_gasPrice": lambda: _hex(PRIORITY_FEE_WEI),
            "eth_maxPriorityFeePerGas": lambda: _hex(PRIORITY_FEE_WEI),
            "eth_feeHistory": self._fee_history,
            "eth_getBalance": self._get_balance,
            "eth_getTransactionCount": self._get_transaction_count,
            "eth_getCode": self._get_code,
            "eth_getStorageAt": self._get_storage_at,
            "eth_call": self._call,
            "eth_estimateGas": self._estimate_gas,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "eth_sendTransaction": lambda tx: _data(self.engine.send_transaction(tx)),
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
        if ref is None or ref in _LATEST_TAGS:
            return
        if isinstance(ref, dict):
            ref = ref.get("blockNumber", ref.get("blockHash"))
        if isinstance(ref, str) and len(ref) == 66:
            block = self.engine.latest
            if ref.lower() == _data(block.hash):
                return
        elif _quantity(ref) == self.engine.latest.number:
            return
        raise RpcError(
            -32000,
            f"the revm backend keeps only the latest state (block {self.engine.latest.number}); "
            f"state at block {ref} is not available",
        )

    def _get_balance(self, address: str, block: Any = "latest") -> str:
        self._state_block(block)
        return _hex(self.engine.balance_nonce(to_checksum_address(address))[0])

    def _get_transaction_count(self, address: str, block: Any = "latest") -> str:
        address = to_checksum_address(address)
        if block == "pending":
            return _hex(self.engine.pending_nonce(address))
        self._state_block(block)
        return _hex(self.engine.balance_nonce(address)[1])

    def _get_code(self, address: str, block: Any = "latest") -> str:
        self._state_block(block)
        return _data(self.engine.code(to_checksum_address(address)))

    def _get_storage_at(self, address: str, slot: Any, block: Any = "latest") -> str:
        self._state_block(block)
        value = self.engine.storage(to_checksum_address(address), _quantity(slot))
        return _data(value.to_bytes(32, "big"))

    def _message(self, tx: dict[str, Any]) -> tuple[str, str | None, bytes, int, int | None]:
        sender = to_checksum_address(tx["from"]) if tx.get("from") else COINBASE
        to = to_checksum_address(tx["to"]) if tx.get("to") else None
        data = _hex_bytes(tx.get("input", tx.get("data", "0x")))
        gas = _quantity(tx["gas"]) if tx.get("gas") is not None else None
        return sender, to, data, _quantity(tx.get("value", 0)), gas

    def _call(self, tx: dict[str, Any], block: Any = "latest", overrides: Any = None) -> str:
        if overrides:
            raise RpcError(-32602, "state overrides are not supported by the revm backend")
        self._state_block(block)
        sender, to, data, value, gas = self._message(tx)
        outcome = self.engine.call(sender, to, data, value, gas)
        if not outcome.success:
            raise _execution_error(outcome, gas or self.engine.block_gas_limit)
        return _data(outcome.output)

    def _estimate_gas(
        self, tx: dict[str, Any], block: Any = "latest", overrides: Any = None
    ) -> str:
        if overrides:
            raise RpcError(-32602, "state overrides are not supported by the revm backend")
        self._state_block(block)
        sender, to, data, value, gas = self._message(tx)
        return _hex(self.engine.estimate_gas(sender, to, data, value, gas))

    def _send_raw_transaction(self, raw: Any) -> str:
        return _data(self.engine.send_raw_transaction(_hex_bytes(raw)))

    def _evm_mine(self, timestamp: Any = None) -> str:
        if isinstance(timestamp, dict):  # hardhat also takes {"timestamp": ...}
            timestamp = timestamp.get("timestamp")
        self.engine.mine(None if timestamp is None else _quantity(timestamp))
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
        n = max(0, min(_quantity(count), newest_block.number + 1))
        oldest = newest_block.number - n + 1
        history: dict[str, Any] = {
            "oldestBlock": _hex(oldest),
            "baseFeePerGas": ["0x0"] * (n + 1),
            "gasUsedRatio": [
                self.engine.blocks[i].gas_used / self.engine.block_gas_limit
                for i in range(oldest, newest_block.number + 1)
            ],
        }
        if percentiles:
            history["reward"] = [[_hex(PRIORITY_FEE_WEI)] * len(percentiles) for _ in range(n)]
        return history

    def _tx_json(self, tx: SignedTx, mined: MinedTx | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hash": _data(tx.hash),
            "type": _hex(tx.type),
            "chainId": _hex(tx.chain_id),
            "nonce": _hex(tx.nonce),
            "from": tx.sender,
            "to": tx.to,
            "value": _hex(tx.value),
            "gas": _hex(tx.gas),
            "gasPrice": _hex(tx.effective_gas_price if mined else tx.max_fee),
            "input": _data(tx.data),
            "v": _hex(tx.v),
            "r": _hex(tx.r),
            "s": _hex(tx.s),
            "blockHash": _data(mined.block_hash) if mined else None,
            "blockNumber": _hex(mined.block_number) if mined else None,
            "transactionIndex": _hex(mined.index) if mined else None,
        }
        if tx.type >= 1:
            out["accessList"] = []
            out["yParity"] = _hex(tx.v)
        if tx.type == 2:
            out["maxFeePerGas"] = _hex(tx.max_fee)
            out["maxPriorityFeePerGas"] = _hex(tx.priority_fee)
        return out

    def _log_json(self, mined: MinedTx, i: int, log: Log) -> dict[str, Any]:
        return {
            "address": log.address,
            "topics": [_data(t) for t in log.topics],
            "data": _data(log.data),
            "blockNumber": _hex(mined.block_number),
            "blockHash": _data(mined.block_hash),
            "transactionHash": _data(mined.tx.hash),
            "transactionIndex": _hex(mined.index),
            "logIndex": _hex(mined.first_log_index + i),
            "removed": False,
        }

    def _get_receipt(self, tx_hash: Any) -> dict[str, Any] | None:
        key = _hex_bytes(tx_hash)
        mined = self.engine.txs.get(key)
        if mined is None:
            if key in self.engine.dropped:
                raise _invalid(
                    f"transaction 0x{key.hex()} was dropped, not mined: {self.engine.dropped[key]}"
                )
            return None  # unknown, or still pending (auto-mine off)
        tx, outcome = mined.tx, mined.outcome
        return {
            "transactionHash": _data(tx.hash),
            "transactionIndex": _hex(mined.index),
            "blockHash": _data(mined.block_hash),
            "blockNumber": _hex(mined.block_number),
            "from": tx.sender,
            "to": tx.to,
            "type": _hex(tx.type),
            "status": "0x1" if outcome.success else "0x0",
            "gasUsed": _hex(outcome.gas_used),
            "cumulativeGasUsed": _hex(mined.cumulative_gas),
            "effectiveGasPrice": _hex(tx.effective_gas_price),
            # as geth: the address a creation would use, whether or not it succeeded
            "contractAddress": outcome.contract_address
            or (_create_address(tx.sender, tx.nonce) if tx.to is None else None),
            "logs": [self._log_json(mined, i, log) for i, log in enumerate(outcome.logs)],
            "logsBloom": _bloom(outcome.logs),
        }

    def _get_transaction(self, tx_hash: Any) -> dict[str, Any] | None:
        key = _hex_bytes(tx_hash)
        mined = self.engine.txs.get(key)
        if mined is not None:
            return self._tx_json(mined.tx, mined)
        pending = self.engine.pending_tx(key)
        return self._tx_json(pending, None) if pending else None

    def _block_json(self, block: Block | None, full: bool) -> dict[str, Any] | None:
        if block is None:
            return None
        logs = tuple(log for m in block.txs for log in m.outcome.logs)
        return {
            "number": _hex(block.number),
            "hash": _data(block.hash),
            "parentHash": _data(block.parent_hash),
            "timestamp": _hex(block.timestamp),
            "gasLimit": _hex(self.engine.block_gas_limit),
            "gasUsed": _hex(block.gas_used),
            "baseFeePerGas": "0x0",
            "miner": COINBASE,
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "nonce": "0x0000000000000000",
            "mixHash": _data(_ZERO32),
            "sha3Uncles": _data(_EMPTY_UNCLES),
            "logsBloom": _bloom(logs),
            "transactionsRoot": _data(_ZERO32),
            "stateRoot": _data(_ZERO32),
            "receiptsRoot": _data(_ZERO32),
            "extraData": "0x",
            "size": "0x0",
            "uncles": [],
            "withdrawals": [],
            "transactions": [
                self._tx_json(m.tx, m) if full else _data(m.tx.hash) for m in block.txs
            ],
        }

    def _get_block_by_number(self, ref: Any, full: bool = False) -> dict[str, Any] | None:
        return self._block_json(self.engine.block(ref), full)

    def _get_block_by_hash(self, block_hash: Any, full: bool = False) -> dict[str, Any] | None:
        key = _hex_bytes(block_hash)
        return self._block_json(next((b for b in self.engine.blocks if b.hash == key), None), full)

    def _get_logs(self, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        if criteria.get("blockHash"):
            key = _hex_bytes(criteria["blockHash"])
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
            None if t is None else {_hex_bytes(x) for x in ([t] if isinstance(t, str) else t)}
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
                    found.append(self._log_json(mined, i, log))
        return found


def _create_address(sender: str, nonce: int) -> str:
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])
