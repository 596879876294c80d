"""Building and signing the parties' transactions: the calldata of a contract call, the fee and
nonce fields, the signature.

Every party signs locally with its own key (EIP-1559 transactions at a fixed fee cap and tip);
nonces are kept per sender after the first one is read from the node, so a batch can be signed
before any of it is sent.
"""

from __future__ import annotations

from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import get_abi_input_types
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxParams

GWEI = 10**9
MAX_FEE_WEI = 50 * GWEI
TIP_WEI = 1 * GWEI


def call_message(sender: str, fn: ContractFunction) -> TxParams:
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


class TxSigner:
    """The transactions a `Chain` signs: fee fields, and the next nonce of every sender."""

    def __init__(self, w3: Web3, chain_id: int) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self._nonces: dict[str, int] = {}

    def fields(self, sender: str, gas_limit: int) -> dict:
        """Sender, nonce (taken: the next call gets the one after), chain id, gas and fees."""
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
            "maxFeePerGas": MAX_FEE_WEI,
            "maxPriorityFeePerGas": TIP_WEI,
        }

    def contract_tx(self, message: TxParams, gas_limit: int) -> dict:
        """The transaction to sign for a contract call (what build_transaction would give)."""
        fields = self.fields(message["from"], gas_limit)
        return {**fields, "to": message["to"], "data": message["data"], "value": 0}

    def forget_nonce(self, sender: str) -> None:
        """The node refused the sender's last transaction: read its next nonce again."""
        self._nonces.pop(sender, None)

    @staticmethod
    def sign(account: LocalAccount, tx: dict) -> bytes:
        """The raw signed transaction."""
        return bytes(account.sign_transaction(tx).raw_transaction)
