"""The revm chain's engine: state, transaction pool, execution and blocks on revm (the Rust EVM,
through pyrevm).

eth-tester + py-evm spends about 60 ms per transaction, which dominated the co-simulation's wall
time. revm executes one of this project's contract calls in about 30 microseconds; what remains
per transaction is Python: signing, RLP, signature recovery and web3's request pipeline. Every
client (PrivateAggregation, DSOClient, HomeClient, SeedBaselineClient) runs unchanged on it,
because `RevmProvider` (sim/chain/revm/provider.py) answers the JSON-RPC methods web3 sends, as
a node would, from this engine.

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
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from pyrevm import EVM, AccountInfo, BlockEnv, CfgEnv, Env

from sim.chain.revm.receipts import (
    Log,
    MinedTx,
    Outcome,
    logs_bloom,
    quantity,
)
from sim.chain.revm.transactions import (
    Eip1559Fields,
    RpcError,
    SignedTx,
    check_arrival,
    checksum,
    decode_raw_transaction,
    invalid,
    transaction_from_fields,
)

CHAIN_ID = 1337
SPEC_ID = "Cancun"  # revm's SpecId name (case-sensitive; an unknown name silently means latest)
BLOCK_GAS_LIMIT = 60_000_000  # as the pinned hardhat (2.29) node
DEV_ACCOUNT_COUNT = 10
DEV_BALANCE_WEI = 10**27  # 1e9 ETH each, as in contracts/hardhat.config.js
PRIORITY_FEE_WEI = 10**9  # default tip for eth_sendTransaction and eth_maxPriorityFeePerGas
COINBASE = "0x0000000000000000000000000000000000000000"
ZERO32 = bytes(32)
_KECCAK_EMPTY = keccak(b"")
LATEST_TAGS = ("latest", "pending", "safe", "finalized")

# One journal entry per SSTORE and per first SLOAD of a slot; keys print in decimal. The \b keeps
# TransientStorageChange (EIP-1153, reset after every transaction) out.
_STORAGE_CHANGE = re.compile(
    r"\bStorageChange \{ address: (0x[0-9a-fA-F]{40}), key: (0x[0-9a-fA-F]+|\d+),"
)
_REVERT_OUTPUT = re.compile(r"output: (0x[0-9a-fA-F]*)")


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

    @cached_property
    def logs_bloom(self) -> str:
        """The bloom of the block's logs, as hex; computed once, when first asked for, which is
        after the block was sealed (only sealed blocks are in `RevmEngine.blocks`)."""
        return logs_bloom(log for m in self.txs for log in m.outcome.logs)


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
            0, int(time.time()) if genesis_timestamp is None else genesis_timestamp, ZERO32
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
            raise execution_error(first, cap)
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
                    raise invalid(f"transaction refused by the EVM: {exc}") from None
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
                    checksum(log.address),
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
                    accounts[checksum(address)] = info
                journal = self.evm.journal_str
                # the entries come last; the state printed before them holds whole bytecodes
                entries = journal[journal.rfind(", journal: [") :]
                for address, key in _STORAGE_CHANGE.findall(entries):
                    slot = (checksum(address), int(key, 0))
                    if slot not in slots:
                        slots[slot] = int(self.evm.storage(slot[0], slot[1]))
        return outcome, accounts, slots

    def _apply(self, tx: SignedTx) -> Outcome:
        """Execute a mined transaction and write its effects, fee and nonce into the state."""
        balance, nonce = self.balance_nonce(tx.sender)
        if nonce != tx.nonce or balance < tx.max_cost:
            # Checked against the pool on arrival; only an earlier dropped transaction of the
            # same sender (a nonce gap) gets here.
            raise invalid(
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
        return self._admit(decode_raw_transaction(raw, self.chain_id))

    def send_fields(self, fields: Eip1559Fields) -> bytes:
        """A signed EIP-1559 transaction handed over by a client in this process as its fields:
        checked and its sender recovered as a raw one (`transaction_from_fields`), then pooled
        or mined as `send_raw_transaction` would; returns its hash."""
        return self._admit(transaction_from_fields(fields, self.chain_id))

    def _admit(self, tx: SignedTx) -> bytes:
        """Pool a decoded transaction (and mine it under auto-mine) once it passes the checks."""
        if tx.hash in self.txs or tx.hash in self._pending_by_hash:
            raise invalid(f"already known: transaction {tx.hash.hex()}")
        balance, nonce = self.balance_nonce(tx.sender)
        queued = self._queued.get(tx.sender, [])
        check_arrival(tx, balance, nonce, queued, self.block_gas_limit)
        self.pending.append(tx)
        self._queued.setdefault(tx.sender, []).append(tx)
        self._pending_by_hash[tx.hash] = tx
        if self.automine:
            self.mine()
            if tx.hash in self.dropped:
                raise invalid(f"transaction dropped: {self.dropped[tx.hash]}")
        return tx.hash

    def dev_account(self, address: str) -> LocalAccount:
        """The dev account at `address` (eth_sendTransaction signs with it)."""
        account = self._dev_by_address.get(address)
        if account is None:
            raise invalid(f"account {address} is not one of this node's dev accounts")
        return account

    def mine(self, timestamp: int | None = None) -> Block:
        """Seal one block with the pending transactions that fit its gas limit."""
        parent = self.latest
        if timestamp is None:
            timestamp = parent.timestamp + 1
        elif timestamp <= parent.timestamp:
            raise invalid(
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
        elif ref in LATEST_TAGS:
            number = self.latest.number
        elif ref == "earliest":
            number = 0
        else:
            number = quantity(ref)
        return self.blocks[number] if 0 <= number < len(self.blocks) else None

    def _block_env(self, block: Block) -> BlockEnv:
        return BlockEnv(
            number=block.number,
            coinbase=COINBASE,
            timestamp=block.timestamp,
            difficulty=0,
            prevrandao=ZERO32,
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


def _block_hash(block: Block) -> bytes:
    return keccak(
        rlp.encode(
            [block.parent_hash, block.number, block.timestamp, [m.tx.hash for m in block.txs]]
        )
    )


def execution_error(outcome: Outcome, gas: int) -> RpcError:
    if outcome.halt is not None:
        if outcome.halt.startswith("OutOfGas"):
            return RpcError(-32000, f"gas required exceeds allowance ({gas})")
        return RpcError(-32000, f"execution halted: {outcome.halt}")
    # As geth: code 3 with the revert bytes, which web3 turns into ContractCustomError.
    return RpcError(3, "execution reverted", "0x" + outcome.output.hex())
