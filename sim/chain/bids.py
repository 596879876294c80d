"""How a home's bid fits the contract's two masked 128-bit words.

The contract adds every member's two words mod 2^128 and reveals only the group's sums
(``sim.chain.masking``). Two formats share those words:

``band``   the seed paper's: the lower word is Lmin (W), the upper word Lmax (W), each the
           full signed 128-bit value.
``ladder`` a bid of K points (W, rising prices, so the highest demand first) and the reactive
           demand at each point (var): 2K signed values of 24 bits, lanes 0-4 in the lower
           word and 5-9 in the upper one (K <= 5). A word is the integer sum of
           ``value_j * 2^(24 j)``; the sum of such words is the same integer form of the
           lane-wise sums, so the group's sums decode exactly as long as every lane's sum
           fits 24 signed bits (|sum| < 8.39 MW; a home's value is held below
           ``LANE_LIMIT / MAX_GROUP_SIZE``, 52 kW, so that no group of the contract can
           overflow).

The masks are uniform mod 2^128 whatever the plaintext, so the format changes what the DSO
learns (the group's sums at every point, P and Q) but not what anyone else learns.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.constants import MAX_GROUP_SIZE
from sim.errors import BlockhemsError

LANE_BITS = 24
LANES_PER_WORD = 128 // LANE_BITS  # 5 (120 bits of each 128-bit word)
MAX_LADDER_POINTS = LANES_PER_WORD  # 2K lanes in two words
LANE_LIMIT = 1 << (LANE_BITS - 1)  # a lane's sum lies in [-LANE_LIMIT, LANE_LIMIT)
HOME_LANE_LIMIT = LANE_LIMIT // MAX_GROUP_SIZE  # a home's value, W or var


class BidError(BlockhemsError, ValueError):
    """A bid that the contract's words cannot carry."""


def _lanes_to_int(values: Sequence[int]) -> int:
    return sum(int(v) << (LANE_BITS * j) for j, v in enumerate(values))


def _int_to_lanes(value: int, n: int) -> list[int]:
    """Signed lanes of an integer made by `_lanes_to_int` (borrows undone lane by lane)."""
    out = []
    for _ in range(n):
        lane = ((value + LANE_LIMIT) % (1 << LANE_BITS)) - LANE_LIMIT
        out.append(lane)
        value = (value - lane) >> LANE_BITS
    return out


def encode_ladder(points_w: Sequence[int], q_points_var: Sequence[int]) -> tuple[int, int]:
    """(lower, upper) plaintext words (signed integers) of a K-point bid with its q."""
    k = len(points_w)
    if not 2 <= k <= MAX_LADDER_POINTS or len(q_points_var) != k:
        raise BidError(
            f"a ladder bid has 2 to {MAX_LADDER_POINTS} points with a reactive value at each, "
            f"got {k} points and {len(q_points_var)} reactive values"
        )
    lanes = [int(v) for v in (*points_w, *q_points_var)]
    for v in lanes:
        if not -HOME_LANE_LIMIT <= v < HOME_LANE_LIMIT:
            raise BidError(
                f"bid value {v} is outside +-{HOME_LANE_LIMIT} W (var): a group sum could "
                "overflow its lane"
            )
    lanes += [0] * (2 * LANES_PER_WORD - len(lanes))
    return _lanes_to_int(lanes[:LANES_PER_WORD]), _lanes_to_int(lanes[LANES_PER_WORD:])


def decode_ladder(lower: int, upper: int, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A group's (points W, q var) from its revealed sums (signed integers) of K-point bids."""
    lanes = _int_to_lanes(lower, LANES_PER_WORD) + _int_to_lanes(upper, LANES_PER_WORD)
    return tuple(lanes[:k]), tuple(lanes[k : 2 * k])


def ladder_is_consistent(lower: int, upper: int, k: int) -> bool:
    """Whether revealed sums are what K-point bids sum to: the unused lanes are zero and the
    words decode without a remainder (garbage or an overflowed lane gives neither)."""
    lanes_low = _int_to_lanes(lower, LANES_PER_WORD)
    lanes_up = _int_to_lanes(upper, LANES_PER_WORD)
    rest = (lanes_low + lanes_up)[2 * k :]
    exact = _lanes_to_int(lanes_low) == lower and _lanes_to_int(lanes_up) == upper
    return exact and not any(rest)
