"""The results folder of a run, checked and emptied of an earlier run's files before the
run's heavy set-up."""

from __future__ import annotations

import os
from pathlib import Path

from sim.errors import BlockhemsError
from sim.results.writer import TABLES


class OutputDirError(BlockhemsError, ValueError):
    """The results folder cannot be used (a file, below a file, not writable)."""


# What a finished run writes beside its tables (sim.cli, sim.results.plots, sim.privacy): a new
# run into the same folder removes them first, so that no earlier run's summary or plots stand
# beside the new run's (maybe partial) tables.
RUN_SUMMARY_FILES = (
    "summary.json",
    "leakage.json",
    "dispatch.png",
    "prices.png",
    "voltages.png",
    "loading.png",
    "dlmp.png",
    "gas.png",
)


def prepare_output_dir(out_dir: str | Path, resume: bool = False) -> Path:
    """Create the results folder (if needed) and check it can be written, before any heavy
    set-up; remove an earlier run's tables, summary and plots from it, so that a run that
    stops early never leaves them beside its own (`resume`: the run in it is continued, its
    tables and scenario stay). A folder that cannot be used is one OutputDirError line."""
    out = Path(out_dir)
    shown = str(out)
    for parent in reversed(out.parents):  # the first existing ancestor that is not a folder
        if parent.exists() and not parent.is_dir():
            raise OutputDirError(
                f"results folder {shown}: {parent} is a file, not a folder", key="output"
            )
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"results folder {shown} is a file, not a folder", key="output")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(
            f"results folder {shown} cannot be created: {exc.strerror}", key="output"
        ) from None
    probe = out / f".blockhems-write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(
            f"results folder {shown} is not writable: {exc.strerror}", key="output"
        ) from None
    _hold(out, shown)
    stale = list(RUN_SUMMARY_FILES)
    if not resume:
        stale.append("scenario.yaml")
        stale += [f"{table}.{ext}" for table in TABLES for ext in ("csv", "parquet")]
    for name in stale:
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as exc:
            raise OutputDirError(
                f"results folder {shown}: cannot remove the earlier run's {name}: {exc.strerror}",
                key="output",
            ) from None
    return out


LOCK_NAME = ".blockhems-lock"  # held (flock) by the run writing the folder
_held: dict[Path, int] = {}  # folders this process holds: their lock file's descriptor


def _hold(out: Path, shown: str) -> None:
    """Take the folder for this process: a second run into it (or a `--resume` of a run still
    going) would interleave two runs' tables. The lock goes with the process, however it ends
    (the kernel drops a dead process's flock)."""
    import fcntl

    key = out.resolve()
    if key in _held:
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise OutputDirError(
            f"results folder {shown} is in use by another blockhems run (pid {holder}): wait for "
            "it to end or give another folder",
            key="output",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[key] = fd


def release_output_dir(out_dir: str | Path) -> None:
    """Let the folder go (the run that prepared it has ended)."""
    fd = _held.pop(Path(out_dir).resolve(), None)
    if fd is not None:
        os.close(fd)
