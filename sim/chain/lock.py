"""The cross-process lock of a shared node: processes that use one node at the same time
(`connect("rpc", url, shared=True)`) take it to switch auto-mining, mine, batch and send, so that
one process's batch is never interleaved with another's."""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from pathlib import Path

from sim.chain.errors import ChainError


def chain_lock_path(url: str) -> Path:
    """The lock file that processes sharing the node at `url` (`connect(..., shared=True)`) take
    to send, mine and batch; named after the url, so spell the url alike in every process."""
    digest = hashlib.sha256(url.strip().rstrip("/").lower().encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"blockhems-chain-{digest}.lock"


class FileLock:
    """An exclusive `flock` on a file, held by one process at a time; re-entrant per object.

    The file is opened per process: an open file inherited through fork would share its lock
    with the parent, which would then not exclude the child.
    """

    def __init__(self, path: Path) -> None:
        try:
            import fcntl
        except ImportError:  # Windows
            raise ChainError("shared=True needs fcntl.flock, which this platform lacks") from None
        self.path = path
        self._flock = fcntl.flock
        self._exclusive, self._unlock = fcntl.LOCK_EX, fcntl.LOCK_UN
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0
        self._open()  # fail now, naming the file, rather than at the first batch

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ChainError(f"cannot open the chain's lock file {self.path}: {exc}") from None
        self._fd, self._pid, self._depth = fd, os.getpid(), 0
        weakref.finalize(self, os.close, fd)

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._open()
        if self._depth == 0:
            self._flock(self._fd, self._exclusive)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._flock(self._fd, self._unlock)
