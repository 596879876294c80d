"""The embedded eth-tester (py-evm) backend, with the chain id check eth-tester leaves out.

eth-tester executes a raw transaction signed for any chain id, chain id 1 included, so a
transaction signed for another chain could be replayed on it; every node refuses those, and so
does the revm backend. `TesterProvider` refuses them before eth-tester sees them, as revm does:
a typed transaction whose chain id is not this chain's, and a legacy one without EIP-155 replay
protection. eth-tester is imported only when this backend is opened.
"""

from __future__ import annotations

from typing import Any

import rlp
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse


def raw_chain_id(raw: bytes) -> int | None:
    """The chain id a raw transaction is signed for; None for an unprotected legacy one.

    Raises ValueError if `raw` is no transaction (eth-tester then gives its own error)."""
    try:
        if raw and raw[0] < 0x80:  # typed (EIP-2718): the chain id is the first field
            return int.from_bytes(rlp.decode(raw[1:])[0], "big")
        fields = rlp.decode(raw)
        v = int.from_bytes(fields[6], "big")
    except (rlp.DecodingError, IndexError, TypeError) as exc:
        raise ValueError(f"not a raw transaction: {exc}") from None
    return None if v in (27, 28) else (v - 35) // 2


class TesterProvider(EthereumTesterProvider):
    """web3's eth-tester provider, refusing raw transactions signed for another chain."""

    _chain_id: int | None = None

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method == "eth_sendRawTransaction" and params:
            refusal = self._chain_id_refusal(params[0])
            if refusal is not None:
                request_id = repr(self._current_request_id)
                self._current_request_id += 1
                error = {"code": -32000, "message": refusal}
                return {"id": request_id, "jsonrpc": "2.0", "error": error}  # type: ignore[typeddict-item]
        return super().make_request(method, params)

    def _chain_id_refusal(self, raw: Any) -> str | None:
        if self._chain_id is None:
            self._chain_id = int(super().make_request(RPCEndpoint("eth_chainId"), [])["result"])
        data = bytes.fromhex(raw[2:]) if isinstance(raw, str) else bytes(raw)
        try:
            chain_id = raw_chain_id(data)
        except ValueError:
            return None
        if chain_id is None:
            return "unprotected legacy transaction (no EIP-155 chain id) refused"
        if chain_id != self._chain_id:
            return f"invalid chain id {chain_id}: this chain's id is {self._chain_id}"
        return None


def open_tester() -> tuple[Web3, Any]:
    """A web3 connection to a fresh eth-tester chain, and the tester (for time travel)."""
    from eth_tester import EthereumTester, PyEVMBackend

    tester = EthereumTester(PyEVMBackend())
    return Web3(TesterProvider(tester)), tester
