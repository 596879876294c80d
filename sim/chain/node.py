"""Start and stop a local JSON-RPC node: hardhat (pinned in contracts/package.json) or the revm
chain served by `python -m sim.chain.revm.node`.

Bound to 127.0.0.1 on a free port. Hardhat needs Node.js and `npm ci` in contracts/; the revm
node needs only this Python environment. Several processes (mosaik simulators) can then share
the chain: `connect("rpc", node.url, shared=True)` in each.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Literal, Self

from sim.chain.artifacts import CONTRACTS_DIR
from sim.chain.connection import ChainError
from sim.children import child_env, preexec

HARDHAT_BIN = CONTRACTS_DIR / "node_modules" / ".bin" / "hardhat"
REPO_DIR = Path(__file__).resolve().parents[2]
NodeKind = Literal["hardhat", "revm"]
NODE_KINDS: tuple[NodeKind, ...] = ("hardhat", "revm")
_LOG_TAIL_CHARS = 2000


def node_unavailable_reason() -> str | None:
    """Why a hardhat node cannot be started here, or None if it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (needed for the hardhat JSON-RPC node)"
    if not HARDHAT_BIN.exists():
        return f"hardhat is not installed: run `npm ci` in {CONTRACTS_DIR}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class _NodeProcess:
    """A node in a subprocess on 127.0.0.1:port, logging to a file; a context manager."""

    name = "node"  # for messages; the log file is named after it
    _poll_s = 0.2

    def __init__(self, port: int | None = None, startup_timeout_s: float = 60.0) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._log: IO[str] | None = None
        self.log_path = (
            Path(tempfile.gettempdir()) / f"{self.name.replace(' ', '-')}-{self.port}.log"
        )

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _check_available(self) -> None:
        """Raise a ChainError if the node cannot be started here."""

    def _cwd(self) -> Path:
        return REPO_DIR

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the node and wait until it listens; a node already running is left as it is."""
        if self.running:
            return self
        self._check_available()
        if _listening(self.port):  # else the wait below would take the other server for ours
            raise ChainError(f"cannot start the {self.name} on {self.url}: the port is in use")
        self._log = self.log_path.open("w")
        # the node ends with this process, also after a SIGKILL of it (sim.children):
        # a death signal set between fork and exec, kept by node.js; the revm node also
        # watches its parent. Its own session: a Ctrl-C of the run does not reach it (the
        # run stops it, after its last request).
        self._proc = subprocess.Popen(
            self._command(),
            cwd=self._cwd(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(self._env()),
            preexec_fn=preexec(os.getpid()) if sys.platform.startswith("linux") else None,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self.stop()
                tail = self.log_path.read_text()[-_LOG_TAIL_CHARS:].strip()
                raise ChainError(
                    f"{self.name} exited early (exit code {code}); log {self.log_path}:\n{tail}"
                )
            if _listening(self.port):
                return self
            time.sleep(self._poll_s)
        self.stop()
        raise ChainError(
            f"{self.name} did not listen on {self.url} within {self._timeout} s "
            f"(log {self.log_path})"
        )

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            if hasattr(signal, "SIGCONT"):  # a frozen (SIGSTOP) node would not see SIGTERM
                self._proc.send_signal(signal.SIGCONT)
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HardhatNode(_NodeProcess):
    """A hardhat node process; use as a context manager."""

    name = "hardhat node"

    def _check_available(self) -> None:
        reason = node_unavailable_reason()
        if reason:
            raise ChainError(reason)

    def _command(self) -> list[str]:
        return [str(HARDHAT_BIN), "node", "--hostname", "127.0.0.1", "--port", str(self.port)]

    def _cwd(self) -> Path:
        return CONTRACTS_DIR

    def _env(self) -> dict[str, str]:
        return dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", NO_COLOR="1")


class RevmNode(_NodeProcess):
    """The revm chain served over JSON-RPC (`python -m sim.chain.revm.node`) in a subprocess;
    use as a context manager."""

    name = "revm node"
    _poll_s = 0.05  # up in about a second (imports), unlike hardhat

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "sim.chain.revm.node", "--port", str(self.port)]


def start_node(
    kind: NodeKind, port: int | None = None, startup_timeout_s: float = 60.0
) -> HardhatNode | RevmNode:
    """Start a `hardhat` or `revm` node on 127.0.0.1 and return it (stop it with `.stop()`, or
    use it as a context manager); its JSON-RPC endpoint is `.url`."""
    if kind == "hardhat":
        return HardhatNode(port, startup_timeout_s).start()
    if kind == "revm":
        return RevmNode(port, startup_timeout_s).start()
    raise ChainError(f"unknown node kind {kind!r}: use one of {', '.join(map(repr, NODE_KINDS))}")
