"""The embedded eth-tester backend refuses transactions signed for another chain, as revm does."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3.exceptions import Web3RPCError

from sim.chain.connection import connect
from sim.chain.tester import raw_chain_id


@pytest.mark.parametrize("backend", ["embedded", "revm"])
def test_transactions_signed_for_another_chain_are_refused(backend: str) -> None:
    chain = connect(backend)
    sender = chain.new_accounts(1, "other-chains")[0]
    balance = chain.w3.eth.get_balance(sender.address)
    base = {"nonce": 0, "gas": 21_000, "value": 1, "to": "0x" + "22" * 20}
    fees = {"maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}

    def raw(**fields: Any) -> bytes:
        return bytes(sender.sign_transaction({**base, **fields}).raw_transaction)

    refused = [
        (raw(chainId=1, **fees), "invalid chain id 1:"),  # EIP-1559 for mainnet
        (raw(chainId=chain.chain_id + 1, **fees), f"invalid chain id {chain.chain_id + 1}:"),
        (raw(chainId=1, gasPrice=10**9), "invalid chain id 1:"),  # EIP-155 legacy
        (raw(chainId=1, gasPrice=10**9, accessList=[]), "invalid chain id 1:"),  # EIP-2930
        (raw(gasPrice=10**9), "unprotected legacy transaction"),  # no chain id at all
    ]
    for tx, message in refused:
        with pytest.raises(Web3RPCError, match=message):
            chain.w3.eth.send_raw_transaction(tx)
    assert chain.w3.eth.get_transaction_count(sender.address) == 0
    assert chain.w3.eth.get_balance(sender.address) == balance
    accepted = raw(chainId=chain.chain_id, **fees)
    receipt = chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(accepted))
    assert receipt["status"] == 1


def test_the_chain_id_of_a_raw_transaction() -> None:
    account = Account.from_key(keccak(text="legacy"))
    fees = {"maxFeePerGas": 2, "maxPriorityFeePerGas": 1}
    for chain_id in (1, 1337, 131277322940537):
        tx = {"nonce": 0, "gas": 21_000, "value": 1, "chainId": chain_id, **fees}
        assert raw_chain_id(bytes(account.sign_transaction(tx).raw_transaction)) == chain_id
    legacy = {"nonce": 0, "gas": 21_000, "value": 1, "to": "0x" + "22" * 20, "gasPrice": 1}
    assert raw_chain_id(bytes(account.sign_transaction(legacy).raw_transaction)) is None
    protected = bytes(account.sign_transaction({**legacy, "chainId": 1337}).raw_transaction)
    assert raw_chain_id(protected) == 1337
    with pytest.raises(ValueError, match="not a raw transaction"):
        raw_chain_id(b"\x02\xff")
