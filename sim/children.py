"""What a run's child processes share: they end with the run, however the run ends.

A run starts child processes: the grid process and the HEMS shards (mosaik starts them), a
revm or hardhat node (`sim.chain.node`). Each one ends when its parent does, also after a
SIGKILL of the parent, which runs no clean-up of its own:

* on Linux, `prctl(PR_SET_PDEATHSIG, SIGTERM)`: the kernel sends SIGTERM when the parent dies
  (set in the child itself, or between fork and exec by `preexec` for a node.js hardhat);
* everywhere, a watchdog thread that polls the parent's pid (`watch_parent`) and ends the
  process when the parent is gone.

The parent passes its pid in BLOCKHEMS_PARENT_PID (`child_env`), so a child that starts after
its parent already died (the pid it sees as parent is then another one) ends at once. A child
also ignores SIGINT: a Ctrl-C reaches the whole process group, and the run itself stops its
children (no traceback from a child in the middle of its imports).

This module imports only the standard library: a child calls `guard_child()` first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PARENT_ENV = "BLOCKHEMS_PARENT_PID"
# mosaik's start timeout (its default: 10 s) bounds a child's connection and its answer to the
# init call. A child does both after importing only mosaik_api_v3 and numpy (0.5-0.9 s idle,
# about 3 s with 8 busy loops on 2 cores) and loads the rest in its first step, which mosaik
# does not time; 60 s is 20 times the loaded start-up.
START_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1
WATCHDOG_POLL_S = 0.5


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded in the parent, so `preexec` does no dlopen after fork


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with this process as the children's parent."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def child_sim_config(sim_config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A mosaik sim_config whose processes ("cmd") get this process as their parent."""
    parent = {PARENT_ENV: str(os.getpid())}
    return {
        name: {**entry, "env": {**entry.get("env", {}), **parent}} if "cmd" in entry else entry
        for name, entry in sim_config.items()
    }


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    return _PRCTL is not None and _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def preexec(parent_pid: int) -> Callable[[], None]:
    """A `subprocess.Popen(preexec_fn=...)` that ties the child (also after exec, e.g. node.js)
    to `parent_pid`: death signal, and an immediate exit if the parent is already gone."""

    def tie() -> None:
        die_with_parent()
        if os.getppid() != parent_pid:
            os._exit(1)

    return tie


def _parent_alive(pid: int) -> bool:
    if os.getppid() != pid:  # reparented: the parent has exited (maybe not yet reaped)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_parent(pid: int, poll_s: float = WATCHDOG_POLL_S) -> threading.Thread:
    """A daemon thread that ends this process (SIGTERM, then exit) once `pid` is gone."""

    def watch() -> None:
        while _parent_alive(pid):
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5.0)  # a SIGTERM handler that did not end the process
        os._exit(1)

    thread = threading.Thread(target=watch, name="blockhems-parent-watchdog", daemon=True)
    thread.start()
    return thread


def guard_child() -> int:
    """Call first in a child process of a run: ignore SIGINT, end with the parent. Returns
    the parent's pid (BLOCKHEMS_PARENT_PID, else the current parent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    text = os.environ.get(PARENT_ENV, "")
    parent = int(text) if text.isdigit() else os.getppid()
    die_with_parent()
    if not _parent_alive(parent):  # died before the death signal was set
        os._exit(1)
    watch_parent(parent)
    return parent
