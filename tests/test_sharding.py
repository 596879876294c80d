"""The HEMS fleet sharded over mosaik simulator processes, and the chain as a node: the
results of a run are the same in-process or sharded, on the embedded chain or on a node."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from sim.cosim.world import run_scenario, shard_homes
from sim.results.writer import load_results
from sim.scenario import SCENARIOS_DIR, ScenarioError, parse_scenario
from tests.conftest import skip_or_fail


def _quick(hours: float = 1.0, **chain_and_homes) -> object:
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["time"]["hours"] = hours
    data["chain"]["dropout_probability"] = 0.1  # exercise the recovery path across shards
    for key, value in chain_and_homes.items():
        section, name = key.split("__")
        data[section][name] = value
    return parse_scenario(data, "quick (test)")


def _figures(out) -> dict:
    tables = load_results(out)
    slots = tables["slots"].sort_values("round").reset_index(drop=True)
    homes = tables["homes"].sort_values(["round", "home"]).reset_index(drop=True)
    return {"slots": slots, "homes": homes, "transactions": tables["transactions"], "out": out}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run_scenario(_quick(chain__backend="revm"), out, progress=False)
    return _figures(out)


def _assert_same_results(a: dict, b: dict) -> None:
    columns = ["lambda", "hems_import_kw", "homes_submitted", "groups_revealed", "losses_kw"]
    columns += [f"v_{m}_{ph}_pu" for m in ("min", "max") for ph in "abc"]
    for column in columns:
        np.testing.assert_array_equal(a["slots"][column], b["slots"][column], err_msg=column)
    for column in ["home", "submitted", "lmin_kw", "lmax_kw", "cap_kw", "import_kw"]:
        np.testing.assert_array_equal(a["homes"][column], b["homes"][column], err_msg=column)
    # the same transactions by kind (the blocks they land in may differ)
    kinds = ["label", "status"]
    count = lambda t: t.groupby(kinds).size().to_dict()  # noqa: E731
    assert count(a["transactions"]) == count(b["transactions"])


def test_shards_hold_whole_groups_balanced_and_every_home_once() -> None:
    groups = {0: [0, 1, 2, 3, 4, 5], 1: [6, 7, 8, 9, 10], 2: [11, 12, 13, 14, 15], 3: [16, 17]}
    shards = shard_homes(groups, n_homes=21, n_shards=2)
    assert sorted(h for s in shards for h in s) == list(range(21))
    for members in groups.values():  # a group is never split
        assert sum(set(members) <= set(s) for s in shards) == 1
    hems = [len([h for h in s if h <= 17]) for s in shards]
    assert abs(hems[0] - hems[1]) <= 2  # 18 HEMS homes: 10 / 8 at worst
    assert {18, 19, 20} <= set(shards[0])  # ordinary homes ride with shard 0
    with pytest.raises(ScenarioError, match="homes.shards = 5 exceeds the 4 aggregation groups"):
        shard_homes(groups, n_homes=21, n_shards=5)


def test_shards_need_a_chain_other_processes_reach() -> None:
    with pytest.raises(
        ScenarioError, match="homes.shards = 2: processes cannot share the embedded"
    ):
        _quick(chain__backend="embedded", homes__shards=2)


def test_sharded_over_a_revm_node_equals_in_process(in_process, tmp_path) -> None:
    run = run_scenario(_quick(chain__backend="revm", homes__shards=2), tmp_path, progress=False)
    assert run.parts.node is not None and run.parts.homes_agent is None
    assert {"Homes shard 0", "Homes shard 1"} <= set(run.step_s)
    _assert_same_results(in_process, _figures(tmp_path))


@pytest.mark.node
def test_hardhat_node_in_process_and_sharded_equal_embedded(in_process, tmp_path_factory) -> None:
    from sim.chain.node import node_unavailable_reason

    reason = node_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    for shards in (1, 2):
        out = tmp_path_factory.mktemp(f"hardhat{shards}")
        scenario = _quick(chain__backend="hardhat", homes__shards=shards)
        run_scenario(scenario, out, progress=False)
        _assert_same_results(in_process, _figures(out))


def test_grid_in_its_own_process_gives_the_same_results(in_process, tmp_path) -> None:
    run = run_scenario(
        _quick(chain__backend="revm", feeder__own_process=True), tmp_path, progress=False
    )
    assert run.step_s["Grid"] > 0  # reported by the grid's process
    got = _figures(tmp_path)
    _assert_same_results(in_process, got)
    voltages = [
        load_results(d)["voltages"].sort_values(["round", "bus", "phase"])
        for d in (
            in_process["out"],
            tmp_path,
        )
    ]
    np.testing.assert_array_equal(voltages[0].vm_pu, voltages[1].vm_pu)
