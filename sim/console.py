"""What `blockhems run` shows while it runs: loguru's level (mosaik logs through loguru) and
one progress bar over slots with the slot's time of day, lambda and whether the ground truth
kept every limit in that slot (`sim.results.limits.slot_limits_broken`).

The bar is drawn only on a terminal. Written to a file or a pipe (a log, a test capturing
output) it becomes at most `PLAIN_LINES` plain lines, one every tenth of the run.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TextIO

import pandas as pd
from tqdm import tqdm

from sim.results.limits import slot_limits_broken

PLAIN_LINES = 10
LOG_LEVELS = {"quiet": "ERROR", "default": "WARNING", "verbose": "INFO"}


SIMULATOR_FAILURE = "aborted the simulation"  # mosaik's log line when a simulator process fails


def is_simulator_failure(record: dict) -> bool:
    """mosaik's record of a simulator process's failure, which carries the process's
    traceback: the command line says it in one line instead (`sim.cli._mosaik_failures`)."""
    return SIMULATOR_FAILURE in record["message"]


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """loguru (mosaik's logger) at `level` to `stream` (stderr as it is when a line is
    written), written around the bar; simulator failures are left to the command line."""
    from loguru import logger

    def sink(message: str) -> None:
        tqdm.write(str(message), file=stream or sys.stderr, end="")

    logger.remove()
    logger.add(
        sink,
        level=level,
        format="{time:HH:mm:ss} {level} {name}: {message}",
        filter=lambda record: not is_simulator_failure(record),
    )


def clock(hour: float) -> str:
    """The time of day of an hour counted from midnight of the first day, e.g. 'day 2 13:15'."""
    day, minutes = divmod(round(hour * 60), 24 * 60)
    text = f"{minutes // 60:02d}:{minutes % 60:02d}"
    return f"day {day + 1} {text}" if day else text


def slot_status(row: dict, v_band: tuple[float, float], rating_factor: float = 1.0) -> str:
    """'kept', or which limits the slot broke (phases out of band, line-phases and
    transformer above rating)."""
    judged = slot_limits_broken(pd.DataFrame([row]), v_band, rating_factor).iloc[0]
    if not judged.broken:
        return "limits kept"
    broken = []
    if judged.phases_out_of_band:
        broken.append(f"{judged.phases_out_of_band} phase(s) out of band")
    if judged.lines_over_limit:
        broken.append(f"{judged.lines_over_limit} line-phase(s) over")
    if judged.trafo_over_limit:
        broken.append("transformer over")
    return "LIMITS BROKEN (" + ", ".join(broken) + ")"


class SlotBar:
    """Progress over the slots of a run; call it with each finished slot's row."""

    def __init__(
        self,
        n_slots: int,
        v_band: tuple[float, float],
        rating_factor: float = 1.0,
        stream: TextIO | None = None,
        first: int = 0,
    ) -> None:
        """`first`: the slots a resumed run had finished before (counted as done, not shown)."""
        self.n_slots, self.v_band, self.rating_factor = n_slots, v_band, rating_factor
        self.stream = stream or sys.stderr
        self.done = first
        self.judged = 0  # slots of this session whose limits were judged
        self.broken = 0
        self.every = max(1, math.ceil(n_slots / PLAIN_LINES))
        self.bar: tqdm | None = None
        if self.stream.isatty():
            try:  # a pseudo-terminal may report no width: then a fixed one
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0
            except (OSError, ValueError):
                sized = False
            self.bar = tqdm(
                total=n_slots,
                initial=first,
                file=self.stream,
                unit="slot",
                dynamic_ncols=sized,
                ncols=None if sized else 120,
                bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} slots "
                "[{elapsed}<{remaining}] {desc}",
            )

    def describe(self, row: dict, status: str) -> str:
        return (
            f"{clock(float(row['hour']))}  λ {float(row['lambda']):.3f}  {status}  "
            f"(broken in {self.broken} of {self.judged} slots)"
        )

    def __call__(self, row: dict) -> None:
        status = slot_status(row, self.v_band, self.rating_factor)
        self.done += 1
        self.judged += 1
        self.broken += status != "limits kept"
        if self.bar is not None:
            self.bar.set_description_str(self.describe(row, status), refresh=False)
            self.bar.update(1)
        elif self.done % self.every == 0 or self.done == self.n_slots:
            line = f"slot {self.done}/{self.n_slots}  {self.describe(row, status)}"
            print(line, file=self.stream)
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
