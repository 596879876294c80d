"""The market's protocol rules, each written once: the bid's prices, the dispatch cap and the
round schedule.

Bids: the DSO posts each group a band ``(p_low, p_high)`` ($/kWh). In the seed paper's mode
(``paper``) a home bids its demand at those two prices, ``[Lmin, Lmax]``. In the ``group`` mode
it bids five points, at ``-VOLL, p_low, p_high, +VOLL`` and a last one with its comfort given
up (``bid_prices``): the band's response, the whole range its appliances allow while keeping
comfort, and the load it can shed, so the DSO sees the flexibility the network may need even
when the band asks for none; it bids its reactive power at each point too
(``sim.chain.bids``).

Dispatch (the seed paper's equation 1): a home that revealed ``[Lmin, Lmax]`` (kW, net import)
keeps its import during the round at or below ``P = lambda * Lmax + (1 - lambda) * Lmin``;
with a bid of K > 2 points lambda walks the bid piecewise linearly (``dispatch_cap``).

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

from sim.constants import MARKET_MODES, VOLL_USD_PER_KWH

PHASE_NAMES = ("price", "submit", "recover", "lambda", "dispatch", "record")
GROUP_BID_POINTS = 5  # points of a bid in the group mode (the paper's: 2)
SHED_PRICE_FACTOR = 2.0  # the shed point's price, in VOLL: it only orders the point last


def bid_prices(
    p_low: np.ndarray, p_high: np.ndarray, mode: str, voll_usd_per_kwh: float = VOLL_USD_PER_KWH
) -> np.ndarray:
    """The rising prices ($/kWh) at which a home bids, per row of the bands ``p_low``,
    ``p_high``: (N, 2) in the ``paper`` mode; (N, 5) in the ``group`` mode, the last one the
    shed point's (the home's demand with its comfort given up, dispatched only when nothing
    else keeps the limits)."""
    p_low = np.asarray(p_low, dtype=float)
    p_high = np.maximum(np.asarray(p_high, dtype=float), p_low)
    if mode == "paper":
        return np.stack([p_low, p_high], axis=-1)
    if mode != "group":
        raise ValueError(f"unknown market mode {mode!r}; modes: {', '.join(MARKET_MODES)}")
    edge = np.full_like(p_low, voll_usd_per_kwh)
    top = np.maximum(edge, p_high)
    return np.stack(
        [np.minimum(-edge, p_low), p_low, p_high, top, SHED_PRICE_FACTOR * top], axis=-1
    )


def dispatch_cap(lam: float | np.ndarray, points_kw: np.ndarray) -> np.ndarray:
    """The cap (kW) of each home or group for dispatch factor ``lam`` (one, or one per row).

    ``points_kw`` (..., K) is a bid: the demand at K prices in rising order, so it is
    non-increasing along the last axis (``[..., 0]`` is Lmax, ``[..., -1]`` Lmin). Lambda walks
    the bid piecewise linearly from Lmin (0) to Lmax (1), each of the K - 1 segments taking an
    equal share of [0, 1]. With K = 2 this is the seed paper's rule
    ``lam * Lmax + (1 - lam) * Lmin``.
    """
    lam = np.asarray(lam, dtype=float)
    points = np.asarray(points_kw, dtype=float)
    k = points.shape[-1]
    if k == 2:
        return lam * points[..., 0] + (1.0 - lam) * points[..., 1]
    position = (1.0 - np.clip(lam, 0.0, 1.0)) * (k - 1)  # from Lmax (0) to Lmin (K - 1)
    segment = np.minimum(np.floor(position), k - 2).astype(int)
    frac = position - segment
    seg = segment[..., None] if np.ndim(segment) else segment
    upper = np.take_along_axis(points, np.broadcast_to(seg, points.shape[:-1] + (1,)), -1)
    lower = np.take_along_axis(points, np.broadcast_to(seg + 1, points.shape[:-1] + (1,)), -1)
    return (1.0 - frac) * upper[..., 0] + frac * lower[..., 0]


@dataclass(frozen=True)
class Schedule:
    """Simulated seconds of each protocol phase inside slot r: r * slot_s + offset."""

    slot_s: int
    n_slots: int
    block_s: int
    deadline_s: int
    recovery_s: int
    first_round: int = 0  # a resumed run's first round: earlier ones are not run

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
        return [r * self.slot_s + o for r in range(self.first_round, self.n_slots) for o in offs]

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
