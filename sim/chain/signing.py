"""Building and signing the parties' transactions: the calldata of a contract call, the fee and
nonce fields, the signature.

Every party signs locally with its own key: EIP-1559 transactions at a fixed fee cap and tip.
Nonces are kept per sender after the first one is read from the node, so a batch can be signed
before any of it is sent.

The signer builds the typed transaction itself: RLP of the fields, keccak, and a recoverable
secp256k1 signature from libsecp256k1 (coincurve) with the account's key, kept per account. The
raw bytes are the ones eth-account produces for the same transaction (RFC 6979 nonces, low s;
tests/test_chain_signing.py compares), at about a twentieth of its cost: eth-account formats and
validates a dict of fields and builds key objects on every call. `TxSigner(native=False)` signs
with eth-account instead, the reference kept for the tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import get_abi_input_types, to_canonical_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxParams

from sim.chain.encoding import keccak256, raw_transaction, signing_hash, unsigned_fields

GWEI = 10**9
MAX_FEE_WEI = 50 * GWEI
TIP_WEI = 1 * GWEI


# ---------------------------------------------------------------------------- calldata

# Per function signature (name and input types): its selector and input types. The signature
# fixes both, so functions of different contract objects share an entry.
_FUNCTIONS: dict[str, tuple[bytes, list[str]]] = {}


def calldata(fn: ContractFunction) -> bytes:
    """The ABI-encoded call `fn` with its bound arguments.

    Encoded with the ABI codec directly: web3's own path (`fn.call`, `fn.build_transaction`)
    looks the function up in the ABI and validates the whole ABI again on every call, about
    2.5 ms per transaction, more than the revm backend needs to execute it. Arguments the codec
    does not take as they are (ENS names, hex strings for bytes) go through web3's encoder,
    which normalizes them.
    """
    try:
        if fn.arguments is None:
            raise TypeError("no bound arguments")
        prefix = _FUNCTIONS.get(fn.signature)
        if prefix is None:
            selector = bytes.fromhex(fn.selector[2:])
            prefix = _FUNCTIONS[fn.signature] = selector, get_abi_input_types(fn.abi)
        selector, types = prefix
        return selector + fn.w3.codec.encode(types, fn.arguments)
    except (EncodingError, TypeError, ValueError):
        return bytes.fromhex(fn._encode_transaction_data()[2:])


def call_message(sender: str, fn: ContractFunction) -> TxParams:
    """The call `fn` from `sender` as eth_call / eth_estimateGas fields."""
    return {"from": sender, "to": fn.address, "data": HexStr("0x" + calldata(fn).hex())}


# ---------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SignedCall:
    """A signed EIP-1559 transaction: its raw bytes and the fields they encode."""

    raw: bytes  # as sent to a node (eth_sendRawTransaction)
    hash: bytes  # keccak(raw): the transaction hash
    signing_hash: bytes  # keccak(0x02 || rlp(unsigned fields)): what the signature signs
    sender: str  # the signing account (checksummed)
    chain_id: int
    nonce: int
    priority_fee: int
    max_fee: int
    gas: int
    to: str | None  # None creates a contract
    value: int
    data: bytes
    y_parity: int
    r: int
    s: int


class TxSigner:
    """The transactions a `Chain` signs: fee fields, the next nonce of every sender, signing.

    `native=False` signs with eth-account (the reference) instead of the cached native keys.
    """

    def __init__(self, w3: Web3 | None, chain_id: int, native: bool = True) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.native = native
        self._nonces: dict[str, int] = {}
        self._keys: dict[str, coincurve.PrivateKey] = {}  # by address

    def next_nonce(self, sender: str) -> int:
        """The sender's next nonce, taken: the next call gets the one after."""
        nonce = self._nonces.get(sender)
        if nonce is None:
            # "pending": in a batch with auto-mining off, sent transactions are not yet mined
            nonce = self.w3.eth.get_transaction_count(sender, "pending")  # type: ignore[union-attr]
        self._nonces[sender] = nonce + 1
        return nonce

    def forget_nonce(self, sender: str) -> None:
        """The node refused the sender's last transaction: read its next nonce again."""
        self._nonces.pop(sender, None)

    def fields(self, sender: str, gas_limit: int) -> dict:
        """Sender, nonce (taken), chain id, gas and fees, for web3's `build_transaction`."""
        return {
            "from": sender,
            "nonce": self.next_nonce(sender),
            "chainId": self.chain_id,
            "gas": gas_limit,
            "maxFeePerGas": MAX_FEE_WEI,
            "maxPriorityFeePerGas": TIP_WEI,
        }

    def sign_call(
        self, account: LocalAccount, to: str | None, data: bytes, gas_limit: int, value: int = 0
    ) -> SignedCall:
        """Sign a transaction from `account` with its next nonce."""
        return self.sign(account, self.next_nonce(account.address), to, data, gas_limit, value)

    def sign(
        self,
        account: LocalAccount,
        nonce: int,
        to: str | None,
        data: bytes,
        gas_limit: int,
        value: int = 0,
        priority_fee: int = TIP_WEI,
        max_fee: int = MAX_FEE_WEI,
    ) -> SignedCall:
        """Sign the EIP-1559 transaction with these fields (and the chain's id)."""
        unsigned = unsigned_fields(
            self.chain_id,
            nonce,
            priority_fee,
            max_fee,
            gas_limit,
            to_canonical_address(to) if to is not None else b"",
            value,
            data,
        )
        to_sign = signing_hash(unsigned)
        if self.native:
            signature = self._key(account).sign_recoverable(to_sign, hasher=None)
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:64], "big")
            y_parity = signature[64]
            raw = raw_transaction(unsigned, y_parity, r, s)
        else:
            tx = {
                "chainId": self.chain_id,
                "nonce": nonce,
                "gas": gas_limit,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority_fee,
                "value": value,
                "data": data,
            }
            if to is not None:
                tx["to"] = to
            signed = account.sign_transaction(tx)
            raw, y_parity, r, s = bytes(signed.raw_transaction), signed.v, signed.r, signed.s
        return SignedCall(
            raw=raw,
            hash=keccak256(raw),
            signing_hash=to_sign,
            sender=account.address,
            chain_id=self.chain_id,
            nonce=nonce,
            priority_fee=priority_fee,
            max_fee=max_fee,
            gas=gas_limit,
            to=to,
            value=value,
            data=data,
            y_parity=y_parity,
            r=r,
            s=s,
        )

    def _key(self, account: LocalAccount) -> coincurve.PrivateKey:
        key = self._keys.get(account.address)
        if key is None:
            key = self._keys[account.address] = coincurve.PrivateKey(bytes(account.key))
        return key
