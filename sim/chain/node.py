"""Start and stop a local hardhat JSON-RPC node (pinned in contracts/package.json).

Bound to 127.0.0.1 on a free port; needs Node.js and `npm ci` in contracts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from sim.chain.artifacts import CONTRACTS_DIR
from sim.chain.connection import ChainError

HARDHAT_BIN = CONTRACTS_DIR / "node_modules" / ".bin" / "hardhat"


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


class HardhatNode:
    """A hardhat node process; use as a context manager."""

    def __init__(self, port: int | None = None, startup_timeout_s: float = 60.0) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None

    def start(self) -> HardhatNode:
        reason = node_unavailable_reason()
        if reason:
            raise ChainError(reason)
        env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", NO_COLOR="1")
        self._log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hardhat-{self.port}.log"
        log = self._log_path.open("w")
        self._proc = subprocess.Popen(
            [str(HARDHAT_BIN), "node", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=CONTRACTS_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ChainError(f"hardhat node exited early: {self._log_path.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        self.stop()
        raise ChainError(f"hardhat node did not listen on {self.url} within {self._timeout} s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> HardhatNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
