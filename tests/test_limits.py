"""Limit counting on hand-built slots tables: every count and worst case against what the
rows say by inspection."""

import pandas as pd
import pytest

from sim.results.limits import limit_summary, slot_limits_broken, verdict

BAND = (0.90, 1.05)


def _slots(rows: list[dict]) -> pd.DataFrame:
    base = {
        "v_min_a_pu": 0.95, "v_max_a_pu": 1.00, "v_min_b_pu": 0.95, "v_max_b_pu": 1.00,
        "v_min_c_pu": 0.95, "v_max_c_pu": 1.00, "max_line_loading_pct": 50.0,
        "lines_over_limit": 0, "max_trafo_loading_pct": 40.0, "shed_kw": 0.0,
        "pv_curtailed_kw": 0.0,
    }  # fmt: skip
    return pd.DataFrame([{**base, "round": r, **row} for r, row in enumerate(rows)])


def test_a_clean_run_keeps_every_limit() -> None:
    s = limit_summary(_slots([{}, {}]), BAND, 0.25)
    assert s["voltage_violations"] == 0
    assert s["slots_with_any_limit_broken"] == 0
    assert s["worst_undervoltage_pu"] == s["worst_overvoltage_pu"] == 0.0
    assert verdict(s).startswith("every limit kept")


def test_each_limit_is_counted_with_its_worst_case() -> None:
    slots = _slots(
        [
            {"v_min_a_pu": 0.88, "v_max_b_pu": 1.06},  # two phases out in one slot
            {"v_min_c_pu": 0.895},
            {"max_line_loading_pct": 120.0, "lines_over_limit": 3},
            {"max_trafo_loading_pct": 104.0, "shed_kw": 8.0, "pv_curtailed_kw": 4.0},
            {},
        ]
    )
    s = limit_summary(slots, BAND, 0.5)
    assert s["voltage_violations"] == 3
    assert s["worst_undervoltage_pu"] == pytest.approx(0.02)
    assert s["worst_overvoltage_pu"] == pytest.approx(0.01)
    assert s["line_phase_overloads"] == 3 and s["slots_with_line_overload"] == 1
    assert s["max_line_loading_pct"] == 120.0
    assert s["slots_with_trafo_overload"] == 1 and s["max_trafo_loading_pct"] == 104.0
    assert s["energy_not_served_kwh"] == pytest.approx(4.0)
    assert s["pv_curtailed_kwh"] == pytest.approx(2.0)
    assert s["slots_with_any_limit_broken"] == 4
    per_slot = slot_limits_broken(slots, BAND)
    assert per_slot.broken.tolist() == [True, True, True, True, False]
    line = verdict(s)
    assert line.startswith("LIMITS BROKEN")
    for part in ("3 slot-phases", "0.0200 pu below", "120.0 %", "104.0 %", "4.0 kWh not served"):
        assert part in line
    # load shed alone keeps the limits: said, but not as a limit broken
    kept = {**s, "voltage_violations": 0, "slots_with_line_overload": 0}
    kept["slots_with_trafo_overload"] = 0
    assert verdict(kept) == (
        "every limit kept in the ground-truth AC flow (voltage band, lines, transformer); "
        "4.0 kWh not served (heating shed)"
    )


def test_a_value_on_the_limit_is_kept() -> None:
    slots = _slots([{"v_min_a_pu": 0.90, "v_max_c_pu": 1.05, "max_trafo_loading_pct": 100.0}])
    s = limit_summary(slots, BAND, 0.25)
    assert s["voltage_violations"] == 0 and s["slots_with_trafo_overload"] == 0


def test_without_the_count_column_lines_are_judged_against_the_rating_factor() -> None:
    slots = _slots([{"max_line_loading_pct": 95.0}]).drop(columns="lines_over_limit")
    assert slot_limits_broken(slots, BAND, rating_factor=0.9).lines_over_limit.tolist() == [1]
    assert slot_limits_broken(slots, BAND, rating_factor=1.0).lines_over_limit.tolist() == [0]


def test_stability_is_the_mean_step_per_group_and_counts_price_caps() -> None:
    from sim.results.writer import stability

    groups = pd.DataFrame(
        {
            "round": [0, 1, 2, 0, 1, 2],
            "group": [0, 0, 0, 1, 1, 1],
            "p_low_usd_per_kwh": [0.1, 0.2, 0.1, 0.0, 0.0, -5.0],
            "p_high_usd_per_kwh": [0.2, 0.2, 0.2, 5.0, 0.3, 0.3],
            "lambda_group": [0.0, 1.0, 0.0, 0.5, 0.5, 0.5],
        }
    )
    s = stability(groups.sample(frac=1.0, random_state=1))  # row order must not matter
    assert s["band_low_step_mean_usd_per_kwh"] == pytest.approx((0.1 + 2.5) / 2)
    assert s["band_high_step_mean_usd_per_kwh"] == pytest.approx((0.0 + 2.35) / 2)
    assert s["lambda_step_mean"] == pytest.approx(0.5)
    assert s["group_rounds_at_price_cap"] == 2
