"""The revm chain (`RevmProvider`) served over HTTP JSON-RPC on 127.0.0.1, for several processes.

The in-process `revm` backend is the fastest chain, but it lives inside one process. Mosaik runs
simulators as separate processes (one per shard of homes); they share one chain through this
node and connect to it as to any node: `connect("rpc", url, shared=True)`.

    python -m sim.chain.revm.node --port 8545

Answers are exactly what `RevmProvider.make_request` gives in process, serialized to JSON with
the request's id, so results (gas, receipts, blocks, errors) are the same as in process. One
thread per connection (web3 keeps its connection open), but one request at a time reaches the
provider: the EVM state has a single writer. A JSON array of requests (a JSON-RPC batch) is
answered with an array, in order, with no other client's request in between. Only 127.0.0.1 is
served: the node signs for its unlocked dev accounts (eth_sendTransaction). Requests are not
logged; errors are, to stderr (the node's log file under `RevmNode`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sim.chain.revm.provider import RevmProvider

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a batch of thousands of raw transactions fits

log = logging.getLogger("sim.chain.revm.node")


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _json_default(value: Any) -> str:
    # RevmProvider answers with hex strings already; bytes (HexBytes) would be data, as web3 writes
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RevmRpcServer(ThreadingHTTPServer):
    """An HTTP JSON-RPC server in front of one `RevmProvider`."""

    daemon_threads = True

    def __init__(self, port: int, provider: RevmProvider | None = None) -> None:
        # the chain first, then the socket: once the port listens, the node answers
        self.provider = provider or RevmProvider()
        self._provider_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def answer(self, body: bytes) -> bytes:
        """The JSON answer to a request body (one request or a batch array)."""
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._encode(_error(None, -32700, f"parse error: {exc}"))
        if isinstance(request, list):
            if not request:
                return self._encode(_error(None, -32600, "invalid request: empty batch"))
            with self._provider_lock:  # a batch is answered as one step
                answers = [self._answer_one(r) for r in request]
            return self._encode(answers)
        with self._provider_lock:
            return self._encode(self._answer_one(request))

    def _answer_one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, -32600, f"invalid request: expected an object, got {request!r}")
        request_id = request.get("id")
        method, params = request.get("method"), request.get("params", [])
        if not isinstance(method, str):
            return _error(request_id, -32600, "invalid request: 'method' must be a string")
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error(request_id, -32602, f"{method}: params must be an array (by position)")
        try:
            response = self.provider.make_request(method, params)  # type: ignore[arg-type]
        except Exception as exc:  # a bug in the provider: report it, keep serving
            log.exception("%s%s failed", method, params)
            return _error(request_id, -32603, f"internal error in the revm node: {exc!r}")
        response["id"] = request_id  # the provider numbers its own requests
        return dict(response)

    def _encode(self, answer: Any) -> bytes:
        try:
            text = json.dumps(answer, default=_json_default, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            log.exception("cannot serialize an answer")
            ids = [a.get("id") for a in answer] if isinstance(answer, list) else [answer.get("id")]
            message = f"internal error in the revm node: answer not serializable: {exc}"
            errors = [_error(i, -32603, message) for i in ids]
            text = json.dumps(errors if isinstance(answer, list) else errors[0])
        return text.encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as web3's requests session expects
    disable_nagle_algorithm = True  # small answers: no wait for the client's delayed ACK
    server: RevmRpcServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.send_error(411, "a JSON-RPC request needs a Content-Length header")
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self.send_error(413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        body = self.server.answer(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.send_error(405, "this is a JSON-RPC node: POST a JSON-RPC request")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass  # no access log: one line per request would drown the errors

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        log.warning("%s: %s", self.address_string(), format % args)


def serve(server: RevmRpcServer) -> None:
    """Serve until interrupted (Ctrl-C) or terminated (SIGTERM, as `RevmNode.stop` sends)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # ends the loop like Ctrl-C
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.chain.revm.node",
        description="Serve an embedded revm chain over HTTP JSON-RPC on 127.0.0.1.",
    )
    parser.add_argument("--port", type=_port, default=8545, help="TCP port (default 8545)")
    args = parser.parse_args(argv)
    from sim.children import PARENT_ENV, guard_child

    if argv is None and PARENT_ENV in os.environ:  # started by a run (RevmNode): end with it
        guard_child()
    logging.basicConfig(level=logging.WARNING, format="revm-node: %(levelname)s %(message)s")
    try:
        server = RevmRpcServer(args.port)
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot listen on %s:%d: %s", HOST, args.port, exc)
        return 1
    serve(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
