"""The masking scheme without a chain: cancellation, recovery words, self-masks, encodings,
refusals."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sim.chain.masking import (
    MODULUS,
    DSOUnmasker,
    HomeMasker,
    MaskContext,
    PrivacyError,
    decode_watts,
    encode_watts,
    pack_words,
    public_key_bytes,
    unpack_words,
)

CTX = MaskContext(chain_id=31337, contract="0x" + "ab" * 20, group=4, epoch=9)


def x25519_key(name: str) -> X25519PrivateKey:
    """A fixed key for these offline tests (the runs draw theirs from the OS CSPRNG)."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())


def self_secret(name: str) -> bytes:
    return hashlib.sha256(b"self/" + name.encode()).digest()


def maskers(n: int, ctx: MaskContext = CTX) -> tuple[list[HomeMasker], DSOUnmasker, dict, bytes]:
    keys = [x25519_key(f"home{i}") for i in range(n)]
    dso_key = x25519_key("dso")
    dso_pub = public_key_bytes(dso_key)
    members = {i: public_key_bytes(k) for i, k in enumerate(keys)}
    homes = [
        HomeMasker(k, self_secret(f"home{i}"), i, members, dso_pub, ctx) for i, k in enumerate(keys)
    ]
    return homes, DSOUnmasker([dso_key]), members, dso_pub


def test_encoding_round_trips_signed_watts() -> None:
    for value in (0, 1, -1, 12_345, -987_654_321, 2**127 - 1, -(2**127)):
        assert decode_watts(encode_watts(value)) == value
    with pytest.raises(ValueError, match="does not fit"):
        encode_watts(2**127)
    with pytest.raises(TypeError, match="integer number of watts"):
        encode_watts(1.5)  # type: ignore[arg-type]
    assert unpack_words(pack_words(-5 % MODULUS, 7)) == (-5 % MODULUS, 7)
    assert pack_words(1, 2) == 2 << 128 | 1


def test_masks_cancel_after_recovery_and_only_the_dso_unmasks() -> None:
    homes, dso, members, dso_pub = maskers(7)
    rng = random.Random(3)
    values = [rng.randrange(-5000, 9000) for _ in homes]
    for round_ in range(1, 5):
        words = [h.mask(round_, "upper", v) for h, v in zip(homes, values, strict=True)]
        total = sum(words) % MODULUS
        # before the recovery the self-masks remain, even for the DSO
        assert abs(dso.unmask(total, members, CTX, round_, "upper", dso_pub) - sum(values)) > 2**100
        total = (total + sum(h.recovery(round_, "upper", []) for h in homes)) % MODULUS
        masks = dso.dso_mask_sum(members, CTX, round_, "upper", dso_pub)
        # without the DSO's key the total is the sum plus the DSO masks: noise
        assert abs(decode_watts(total) - sum(values)) > 2**100
        assert total == (sum(values) + masks) % MODULUS
        assert dso.unmask(total, members, CTX, round_, "upper", dso_pub) == sum(values)


def test_recovery_words_give_the_exact_survivor_sum() -> None:
    homes, dso, members, dso_pub = maskers(8)
    values = [100 * (i + 1) for i in range(8)]
    dropped = {1, 6}
    survivors = [i for i in range(8) if i not in dropped]
    total = sum(homes[i].mask(5, "lower", values[i]) for i in survivors)
    total += sum(homes[i].recovery(5, "lower", dropped) for i in survivors)
    contributors = {i: members[i] for i in survivors}
    assert dso.unmask(total % MODULUS, contributors, CTX, 5, "lower", dso_pub) == sum(
        values[i] for i in survivors
    )


def test_a_dropped_homes_word_stays_masked_by_its_self_mask() -> None:
    """Everything the survivors reveal, plus the DSO's own key, cancels the dropped home's
    pairwise and DSO masks but leaves its self-mask, which it never reveals."""
    homes, dso, _, dso_pub = maskers(6)
    victim, value = 2, 4_321
    survivors = [i for i in range(6) if i != victim]
    word = homes[victim].mask(9, "upper", value)  # seen in the mempool, never mined
    recoveries = sum(homes[i].recovery(9, "upper", [victim]) for i in survivors)
    dso_mask = dso.dso_mask_sum(
        {victim: public_key_bytes(x25519_key("home2"))}, CTX, 9, "upper", dso_pub
    )
    self_masks = sum(homes[i].self_mask(9, "upper") for i in survivors)
    # the old attack, y_h - sum of the survivors' corrections - own DSO mask, with the
    # survivors' self-masks taken out of their recovery words (the best case for the DSO)
    guess = decode_watts(word - recoveries - self_masks - dso_mask)
    assert abs(guess - value) > 2**100
    # the control: with the victim's self-mask (which it never reveals) the formula is exact
    revealed = homes[victim].self_mask(9, "upper")
    assert decode_watts(word - recoveries - self_masks - dso_mask - revealed) == value


def test_keys_are_bound_to_context_round_field_and_self_secret() -> None:
    homes, _, _, _ = maskers(5)
    other, _, _, _ = maskers(5, MaskContext(31337, CTX.contract, CTX.group, CTX.epoch + 1))
    words = {
        homes[0].mask(1, "lower", 42),
        homes[0].mask(2, "lower", 42),
        homes[0].mask(1, "upper", 42),
        other[0].mask(1, "lower", 42),
    }
    assert len(words) == 4
    assert homes[0].self_mask(1, "lower") != homes[1].self_mask(1, "lower")


def test_the_dso_unmasks_rounds_of_every_key_it_held() -> None:
    homes, _, members, _ = maskers(5)
    old, new = x25519_key("dso"), x25519_key("dso-2")
    dso = DSOUnmasker([new])
    with pytest.raises(PrivacyError, match="does not hold"):
        dso.unmask(0, members, CTX, 1, "lower", public_key_bytes(old))
    dso.add_key(old)
    total = sum(h.mask(1, "lower", 10) + h.recovery(1, "lower", []) for h in homes) % MODULUS
    assert dso.unmask(total, members, CTX, 1, "lower", public_key_bytes(old)) == 50


def test_masker_refuses_wrong_membership() -> None:
    keys = [x25519_key(f"h{i}") for i in range(3)]
    members = {i: public_key_bytes(k) for i, k in enumerate(keys)}
    dso_pub = public_key_bytes(x25519_key("dso"))
    secret = self_secret("h0")
    with pytest.raises(ValueError, match="not in the member set"):
        HomeMasker(keys[0], secret, 5, members, dso_pub, CTX)
    with pytest.raises(ValueError, match="not this home's key"):
        HomeMasker(keys[0], secret, 1, members, dso_pub, CTX)
    with pytest.raises(ValueError, match="32 bytes"):
        HomeMasker(keys[0], b"short", 0, members, dso_pub, CTX)
    masker = HomeMasker(keys[0], secret, 0, members, dso_pub, CTX)
    with pytest.raises(ValueError, match="not other members of the round"):
        masker.recovery(1, "lower", [9])
