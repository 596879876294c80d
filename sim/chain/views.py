"""Read-only contract calls (view functions) without web3's per-call machinery.

A view call through web3's `ContractFunction.call` spends about 2 ms in Python (ABI lookup,
argument normalizers, middleware, result formatters) around an EVM call that takes a tenth of
that on revm; a co-simulated slot makes dozens of them. `ViewCaller` encodes the calldata with
eth_abi from the function's ABI entry (looked up once), sends the raw `eth_call` to the
provider, and decodes the answer the way web3 would (addresses checksummed, one output as a
value, several as a list). Anything but a plain successful answer (a revert, a node error, an
empty answer) is left to web3's path, so refusals keep their decoded custom errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_abi_to_4byte_selector, to_checksum_address

_NO_ANSWER = object()  # the fast path got no plain answer: ask web3
_NO_SENDER = "0x" + "00" * 20  # eth-tester insists on a sender; the views do not read it


@dataclass(frozen=True)
class _View:
    selector: bytes
    inputs: list[str]
    outputs: list[str]


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple') :]}"
    return param["type"]


def _web3_value(abi_type: str, value: Any) -> Any:
    """eth_abi's decoded value as web3 gives it: arrays as lists, addresses checksummed."""
    if abi_type.endswith("]"):
        element = abi_type[: abi_type.rindex("[")]
        return [_web3_value(element, v) for v in value]
    if abi_type == "address":
        return to_checksum_address(value)
    return value


class ViewCaller:
    """`caller(name, *args)` calls the view function `name` of the contract at `address`.

    `fallback(name, *args)` is web3's path; it runs whenever the fast path has no plain answer.
    """

    def __init__(
        self, provider: Any, address: str, abi: list[dict], fallback: Callable[..., Any]
    ) -> None:
        self._provider = provider
        self._address = address
        self._fallback = fallback
        self._views: dict[str, _View] = {}
        for entry in abi:
            if entry.get("type") == "function" and entry.get("stateMutability") in ("view", "pure"):
                self._views[entry["name"]] = _View(
                    function_abi_to_4byte_selector(entry),
                    [_abi_type(p) for p in entry["inputs"]],
                    [_abi_type(p) for p in entry["outputs"]],
                )

    def __call__(self, name: str, *args: Any) -> Any:
        return self.many([(name, *args)])[0]

    def many(self, calls: list[tuple]) -> list[Any]:
        """The answers of several view calls, each `(name, *args)`, in order. To a JSON-RPC
        node they go in one request (a JSON-RPC batch): there an HTTP round trip costs more
        than the call."""
        requests = []
        for name, *args in calls:
            view = self._views.get(name)
            if view is None:  # overloaded or not a view: web3 knows what to do
                requests.append(None)
                continue
            data = view.selector + encode(view.inputs, list(args))
            message = {"from": _NO_SENDER, "to": self._address, "data": "0x" + data.hex()}
            requests.append(("eth_call", [message, "latest"]))
        responses = self._batch([r for r in requests if r is not None])
        answers = []
        for (name, *args), request in zip(calls, requests, strict=True):
            response = responses.pop(0) if request is not None else None
            answer = self._decode(self._views.get(name), response)
            answers.append(self._fallback(name, *args) if answer is _NO_ANSWER else answer)
        return answers

    def _batch(self, requests: list[tuple]) -> list[dict | None]:
        if len(requests) > 1 and hasattr(self._provider, "make_batch_request"):
            try:
                responses = self._provider.make_batch_request(requests)
                if isinstance(responses, list) and len(responses) == len(requests):
                    return responses
            except Exception:  # a node without batches: one request each, below
                pass
        out = []
        for method, params in requests:
            try:
                out.append(self._provider.make_request(method, params))
            except Exception:  # eth-tester raises its refusals instead of answering with an error
                out.append(None)
        return out

    @staticmethod
    def _decode(view: _View | None, response: dict | None) -> Any:
        if view is None or response is None or "error" in response:
            return _NO_ANSWER
        result = response.get("result")
        if not result:
            return _NO_ANSWER
        raw = bytes.fromhex(result[2:]) if isinstance(result, str) else bytes(result)
        if not raw and view.outputs:
            return _NO_ANSWER
        values = [
            _web3_value(t, v) for t, v in zip(view.outputs, decode(view.outputs, raw), strict=True)
        ]
        return values[0] if len(values) == 1 else values
