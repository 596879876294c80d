"""The contracts' fixed-point units: the one place their scales are written.

On chain, power is integer watts (signed; the private contract holds them as two's complement
mod 2^128, see ``sim.chain.masking``), prices are integer micro-$/kWh (int64, so DLMPs may be
negative), and the dispatch factor lambda is an integer in [0, LAMBDA_SCALE]. Both contracts
(PrivateAggregation and the seed paper's SeedBaseline) use these scales; the Solidity constant
``LAMBDA_SCALE`` must equal the one here (tests/test_chain_views.py reads it from the contract).
"""

from __future__ import annotations

from collections.abc import Iterable

W_PER_KW = 1000
PRICE_SCALE = 1_000_000  # micro-$/kWh per $/kWh
LAMBDA_SCALE = 1_000_000  # on-chain lambda units per 1.0


def kw_to_w(values_kw: Iterable[float]) -> list[int]:
    """Powers in kW as the integer watts a home submits (rounded to the nearest watt)."""
    return [int(round(float(v) * W_PER_KW)) for v in values_kw]


def w_to_kw(value_w: int) -> float:
    return value_w / W_PER_KW


def price_to_chain(p_usd_per_kwh: float) -> int:
    return round(p_usd_per_kwh * PRICE_SCALE)


def price_from_chain(p_micro_usd_per_kwh: int) -> float:
    return p_micro_usd_per_kwh / PRICE_SCALE


def lambda_to_chain(lam: float) -> int:
    return round(lam * LAMBDA_SCALE)


def lambda_from_chain(value: int) -> float:
    return value / LAMBDA_SCALE


def lambda_as_posted(lam: float) -> float:
    """The lambda the homes will read back from the chain after ``lambda_to_chain``."""
    return lambda_from_chain(lambda_to_chain(lam))
