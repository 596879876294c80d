"""The market's protocol rules, each written once: the dispatch cap and the round schedule.

Dispatch (the seed paper's equation 1): a home that revealed ``[Lmin, Lmax]`` (kW, net import)
keeps its import during the round at or below ``P = lambda * Lmax + (1 - lambda) * Lmin``.

Round schedule: round r is negotiated and delivered in slot r; each protocol phase happens at
its own simulated second ``r * slot_s + offset`` so that the order of the phases follows time
(the chain is shared state outside mosaik's data flow)::

    price     +0                      DSO stage 1 posts the price bands
    submit    +block                  homes submit their masked bounds
    recover   +deadline + block       first block after the deadline: the survivors' recovery words
    lambda    +deadline + recovery + 2 blocks   recovery closed: DSO stage 2 posts lambda
    dispatch  +deadline + recovery + 3 blocks   homes read lambda and run the slot
    record    +deadline + recovery + 4 blocks   the slot's rows are written
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHASE_NAMES = ("price", "submit", "recover", "lambda", "dispatch", "record")


def dispatch_cap(lam: float | np.ndarray, lmin_kw: np.ndarray, lmax_kw: np.ndarray) -> np.ndarray:
    """The cap ``lam * Lmax + (1 - lam) * Lmin`` (kW) of each home or group; ``lam`` is one
    lambda or one per entry."""
    lam = np.asarray(lam, dtype=float)
    return lam * np.asarray(lmax_kw, dtype=float) + (1.0 - lam) * np.asarray(lmin_kw, dtype=float)


@dataclass(frozen=True)
class Schedule:
    """Simulated seconds of each protocol phase inside slot r: r * slot_s + offset."""

    slot_s: int
    n_slots: int
    block_s: int
    deadline_s: int
    recovery_s: int

    @property
    def offsets(self) -> dict[str, int]:
        b, d, r = self.block_s, self.deadline_s, self.recovery_s
        return {
            "price": 0,
            "submit": b,
            "recover": d + b,  # first block after the deadline
            "lambda": d + r + 2 * b,  # recovery closed
            "dispatch": d + r + 3 * b,
            "record": d + r + 4 * b,
        }

    @property
    def end(self) -> int:
        return self.n_slots * self.slot_s

    def times(self, phases: tuple[str, ...]) -> list[int]:
        offs = sorted(self.offsets[p] for p in phases)
        return [r * self.slot_s + o for r in range(self.n_slots) for o in offs]

    def phase_at(self, time: int) -> tuple[int, str]:
        round_, offset = divmod(time, self.slot_s)
        for name, off in self.offsets.items():
            if off == offset:
                return round_, name
        raise ValueError(f"no protocol phase at simulated second {time}")

    def next_after(self, time: int, phases: tuple[str, ...]) -> int:
        """The next time one of `phases` comes after `time`; `end` when none does (mosaik
        needs a next step from a time-based simulator and never runs one at `end`)."""
        later = [t for t in self.times(phases) if t > time]
        return later[0] if later else self.end


def protocol_window_s(block_s: int, deadline_s: int, recovery_s: int) -> int:
    """Seconds from a round's prices to its record phase; must be shorter than a slot."""
    return deadline_s + recovery_s + 4 * block_s
