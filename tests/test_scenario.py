"""Scenario files: the shipped ones validate, bad ones give one clear message each."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.scenario import (
    SCENARIOS_DIR,
    ScenarioError,
    build_scenario_feeder,
    dump_scenario,
    load_scenario,
    parse_scenario,
)

QUICK = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())


def with_changes(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(QUICK))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate_and_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(yaml.safe_load(dump_scenario(scenario))) == scenario
    assert scenario.time.n_slots >= 1


def test_default_scenario_is_the_eu_lv_feeder_on_a_summer_day() -> None:
    scenario = load_scenario()
    assert scenario.feeder.name == "ieee_eu_lv"
    assert scenario.time.n_slots == 96 and scenario.time.slot_s == 900
    assert 6 <= scenario.time.start_date.month <= 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_changes(homes__colour="red"), r"homes\.colour: unknown key"),
        (with_changes(time__slot_s="fifteen"), r"time\.slot_s: .*integer"),
        (with_changes(feeder__name="ieee_13"), r"feeder\.name: unknown feeder 'ieee_13'; valid"),
        (with_changes(time__slot_s=700), r"time\.slot_s: 700 s does not divide a day"),
        (with_changes(chain__backend="rpc"), r"chain: backend 'rpc' needs url"),
        (with_changes(dso__mode="single"), r"dso\.mode: .*'group'.*'paper'"),
        (with_changes(dso__v_min_pu=1.07, dso__v_max_pu=1.05), r"dso: v_min_pu 1.07 must be below"),
        (with_changes(homes__smart_share=1.5), r"homes\.smart_share: .*less than or equal to 1"),
        (with_changes(chain__deadline_s=900), r"must fit in one slot"),
        ({k: v for k, v in QUICK.items() if k != "time"}, r"time: required key is missing"),
    ],
)
def test_bad_scenarios_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data, "scenario bad.yaml")


def test_min_group_size_larger_than_any_zone_names_the_key() -> None:
    scenario = parse_scenario(with_changes(aggregation__min_group_size=12))
    with pytest.raises(ScenarioError, match=r"aggregation\.min_group_size: .*fewer than"):
        build_scenario_feeder(scenario)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="does not exist .*shipped: .*quick.yaml"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(bad)
