"""The ladder format: group sums of packed bids, masked mod 2^128 as the contract adds them,
decode to the lane-wise sums computed directly."""

import numpy as np
import pytest

from sim.chain.bids import (
    HOME_LANE_LIMIT,
    BidError,
    decode_ladder,
    encode_ladder,
    ladder_is_consistent,
)
from sim.chain.masking import MODULUS, decode_watts, encode_watts
from sim.constants import MAX_GROUP_SIZE


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_masked_sums_of_packed_bids_decode_to_lane_sums(k: int) -> None:
    rng = np.random.default_rng(k)
    n = MAX_GROUP_SIZE
    points = rng.integers(-HOME_LANE_LIMIT, HOME_LANE_LIMIT, size=(n, k))
    q = rng.integers(-HOME_LANE_LIMIT, HOME_LANE_LIMIT, size=(n, k))
    masks = [int(m) << 64 | int(m) for m in rng.integers(0, 2**63, size=2 * n)]  # any cancels
    total = [0, 0]
    for h in range(n):
        words = encode_ladder(points[h].tolist(), q[h].tolist())
        for f in range(2):
            total[f] = (total[f] + encode_watts(words[f]) + masks[2 * h + f]) % MODULUS
    total = [(t - sum(masks[f::2])) % MODULUS for f, t in enumerate(total)]
    lower, upper = (decode_watts(t) for t in total)
    got_p, got_q = decode_ladder(lower, upper, k)
    assert list(got_p) == points.sum(axis=0).tolist()
    assert list(got_q) == q.sum(axis=0).tolist()
    assert ladder_is_consistent(lower, upper, k)


def test_a_value_that_could_overflow_a_group_lane_is_refused() -> None:
    with pytest.raises(BidError, match="outside"):
        encode_ladder([HOME_LANE_LIMIT, 0], [0, 0])
    with pytest.raises(BidError, match="2 to 5 points"):
        encode_ladder([1, 2, 3, 4, 5, 6], [0] * 6)


def test_garbage_sums_are_not_consistent_bids() -> None:
    rng = np.random.default_rng(7)
    lower, upper = encode_ladder([1000, -500], [300, 200])
    assert ladder_is_consistent(lower, upper, 2)
    garbage = [decode_watts(int(w) << 64 | int(w)) for w in rng.integers(1, 2**62, size=2)]
    assert not ladder_is_consistent(garbage[0], garbage[1], 2)
    assert not ladder_is_consistent(lower + (1 << 127) - 1, upper, 2)
