"""Starting `blockhems` as its own process for the tests that stop it midway."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKHEMS = [sys.executable, "-c", "import sys; from sim.cli import main; sys.exit(main())"]


def run_until_slots(
    args: list[str], folder: Path, slots: int, timeout_s: float = 300, **popen
) -> subprocess.Popen:
    """`blockhems ARGS` in its own session (a signal to its group reaches its simulator
    processes too), returned once `slots` slots are in `folder`'s slots table parts; fails if
    the run ends first."""
    proc = subprocess.Popen(
        [*BLOCKHEMS, *args], cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True, **popen
    )
    parts, deadline = folder / "slots.parts", time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= slots:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before {slots} slots could be seen"
    return proc
