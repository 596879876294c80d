"""The masking scheme without a chain: cancellation, corrections, encodings, refusals."""

from __future__ import annotations

import random

import pytest

from sim.chain.deployment import x25519_key
from sim.chain.masking import (
    MODULUS,
    DSOUnmasker,
    HomeMasker,
    MaskContext,
    decode_watts,
    encode_watts,
    public_key_bytes,
)

CTX = MaskContext(chain_id=31337, contract="0x" + "ab" * 20, group=4, epoch=9)


def maskers(n: int, ctx: MaskContext = CTX) -> tuple[list[HomeMasker], DSOUnmasker, dict]:
    keys = [x25519_key(f"home{i}") for i in range(n)]
    dso_key = x25519_key("dso")
    members = {i: public_key_bytes(k) for i, k in enumerate(keys)}
    homes = [HomeMasker(k, i, members, public_key_bytes(dso_key), ctx) for i, k in enumerate(keys)]
    return homes, DSOUnmasker(dso_key), members


def test_encoding_round_trips_signed_watts() -> None:
    for value in (0, 1, -1, 12_345, -987_654_321, 2**127 - 1, -(2**127)):
        assert decode_watts(encode_watts(value)) == value
    with pytest.raises(ValueError, match="does not fit"):
        encode_watts(2**127)
    with pytest.raises(TypeError, match="integer number of watts"):
        encode_watts(1.5)  # type: ignore[arg-type]


def test_pairwise_masks_cancel_and_only_the_dso_unmasks() -> None:
    homes, dso, members = maskers(7)
    rng = random.Random(3)
    values = [rng.randrange(-5000, 9000) for _ in homes]
    for round_ in range(1, 5):
        words = [h.mask(round_, "upper", v) for h, v in zip(homes, values, strict=True)]
        total = sum(words) % MODULUS
        # Without the DSO's key the total is the sum plus the DSO masks: noise.
        assert abs(decode_watts(total) - sum(values)) > 2**100
        assert total == (sum(values) + dso.dso_mask_sum(members, CTX, round_, "upper")) % MODULUS
        assert dso.unmask(total, members, CTX, round_, "upper") == sum(values)


def test_corrections_recover_exact_survivor_sum() -> None:
    homes, dso, members = maskers(8)
    values = [100 * (i + 1) for i in range(8)]
    dropped = {1, 6}
    survivors = [i for i in range(8) if i not in dropped]
    total = sum(homes[i].mask(5, "lower", values[i]) for i in survivors)
    total += sum(homes[i].correction(5, "lower", dropped) for i in survivors)
    contributors = {i: members[i] for i in survivors}
    assert dso.unmask(total % MODULUS, contributors, CTX, 5, "lower") == sum(
        values[i] for i in survivors
    )


def test_keys_are_bound_to_context_round_and_field() -> None:
    homes, _, _ = maskers(5)
    other, _, _ = maskers(5, MaskContext(31337, CTX.contract, CTX.group, CTX.epoch + 1))
    words = {
        homes[0].mask(1, "lower", 42),
        homes[0].mask(2, "lower", 42),
        homes[0].mask(1, "upper", 42),
        other[0].mask(1, "lower", 42),
    }
    assert len(words) == 4


def test_masker_refuses_wrong_membership() -> None:
    keys = [x25519_key(f"h{i}") for i in range(3)]
    members = {i: public_key_bytes(k) for i, k in enumerate(keys)}
    dso_pub = public_key_bytes(x25519_key("dso"))
    with pytest.raises(ValueError, match="not in the member set"):
        HomeMasker(keys[0], 5, members, dso_pub, CTX)
    with pytest.raises(ValueError, match="not this home's key"):
        HomeMasker(keys[0], 1, members, dso_pub, CTX)
    masker = HomeMasker(keys[0], 0, members, dso_pub, CTX)
    with pytest.raises(ValueError, match="not members of the round"):
        masker.correction(1, "lower", [9])
