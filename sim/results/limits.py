"""Every limit of the ground-truth AC flow, counted from the slots table.

The slots table holds, per round, the feeder's voltage extremes per phase (pu, below the
transformer), the highest line-phase and transformer loading (% of rating), the number of
line-phases above the study's rating (`lines_over_limit`, against `dso.ampacity_factor` times
the rating), and the fleet's shed load and curtailed PV (kW). This module turns them into the
figures a study reports: slot-phases outside the voltage band with the worst excursion, line
and transformer overloads (count and worst %), energy not served and PV curtailed (kWh), and
one line saying whether the run kept every limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PHASES = ("a", "b", "c")
VOLTAGE_TOL_PU = 1e-6  # numerical noise of the flow, not a tolerance on the band
LOADING_TOL_PCT = 1e-3  # same for loading (% of rating)


def slot_limits_broken(
    slots: pd.DataFrame, v_band: tuple[float, float], rating_factor: float = 1.0
) -> pd.DataFrame:
    """Per round: phases outside the band, line-phases and transformer above rating, and
    `broken` (any of them). Indexed by round."""
    v_min, v_max = v_band
    s = slots.set_index("round")
    out = pd.DataFrame(index=s.index)
    phases_out = np.zeros(len(s), dtype=int)
    for ph in PHASES:
        low = s[f"v_min_{ph}_pu"].to_numpy() < v_min - VOLTAGE_TOL_PU
        high = s[f"v_max_{ph}_pu"].to_numpy() > v_max + VOLTAGE_TOL_PU
        phases_out += low | high
    out["phases_out_of_band"] = phases_out
    if "lines_over_limit" in s:
        out["lines_over_limit"] = s["lines_over_limit"].fillna(0).astype(int)
    else:
        over = s["max_line_loading_pct"] > 100.0 * rating_factor + LOADING_TOL_PCT
        out["lines_over_limit"] = over.astype(int)
    out["trafo_over_limit"] = (
        s["max_trafo_loading_pct"].fillna(0) > 100.0 + LOADING_TOL_PCT
    ).astype(int)
    out["broken"] = (
        (out.phases_out_of_band > 0) | (out.lines_over_limit > 0) | (out.trafo_over_limit > 0)
    )
    return out


def limit_summary(
    slots: pd.DataFrame, v_band: tuple[float, float], slot_h: float, rating_factor: float = 1.0
) -> dict:
    """Counts and worst cases of every limit over the run (see the module docstring)."""
    v_min, v_max = v_band
    per_slot = slot_limits_broken(slots, v_band, rating_factor)
    lows = slots[[f"v_min_{ph}_pu" for ph in PHASES]].to_numpy()
    highs = slots[[f"v_max_{ph}_pu" for ph in PHASES]].to_numpy()
    under = max(0.0, v_min - float(np.nanmin(lows)))
    over = max(0.0, float(np.nanmax(highs)) - v_max)

    def kwh(column: str) -> float:
        return float(slots[column].fillna(0).sum() * slot_h) if column in slots else 0.0

    return {
        "voltage_violations": int(per_slot.phases_out_of_band.sum()),
        "worst_undervoltage_pu": under if under > VOLTAGE_TOL_PU else 0.0,
        "worst_overvoltage_pu": over if over > VOLTAGE_TOL_PU else 0.0,
        "line_phase_overloads": int(per_slot.lines_over_limit.sum()),
        "slots_with_line_overload": int((per_slot.lines_over_limit > 0).sum()),
        "max_line_loading_pct": float(slots["max_line_loading_pct"].max()),
        "line_rating_pct": 100.0 * rating_factor,
        "slots_with_trafo_overload": int(per_slot.trafo_over_limit.sum()),
        "max_trafo_loading_pct": float(slots["max_trafo_loading_pct"].max()),
        "slots_with_any_limit_broken": int(per_slot.broken.sum()),
        "energy_not_served_kwh": kwh("shed_kw"),
        "pv_curtailed_kwh": kwh("pv_curtailed_kw"),
    }


def verdict(summary: dict) -> str:
    """One line: every limit kept, or which were broken and how badly."""
    broken = []
    if summary["voltage_violations"]:
        broken.append(
            f"{summary['voltage_violations']} slot-phases outside the voltage band (worst "
            f"{summary['worst_undervoltage_pu']:.4f} pu below, "
            f"{summary['worst_overvoltage_pu']:.4f} pu above)"
        )
    if summary["slots_with_line_overload"]:
        broken.append(
            f"lines above {summary['line_rating_pct']:.0f} % of rating in "
            f"{summary['slots_with_line_overload']} slots (max "
            f"{summary['max_line_loading_pct']:.1f} %)"
        )
    if summary["slots_with_trafo_overload"]:
        broken.append(
            f"transformer above rating in {summary['slots_with_trafo_overload']} slots (max "
            f"{summary['max_trafo_loading_pct']:.1f} %)"
        )
    # load shed to keep the network's limits is a cost of keeping them, not a limit broken
    shed = summary["energy_not_served_kwh"]
    served = f"; {shed:.1f} kWh not served (heating shed)" if shed > 1e-6 else ""
    if not broken:
        kept = "every limit kept in the ground-truth AC flow (voltage band, lines, transformer)"
        return kept + served
    return "LIMITS BROKEN in the ground-truth AC flow: " + "; ".join(broken) + served
