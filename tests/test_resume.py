"""`blockhems run --resume DIR` (issue 15 item 4): a run killed in the middle and resumed gives
the tables of a run that was never interrupted, row for row and bit for bit (but for what
belongs to the chain: a resumed run deploys a new contract with new keys); with shards and
CSV tables too; the checkpoints are plain arrays, written atomically, and go when the run
finishes; a folder that cannot be resumed is one line."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.cosim.world import run_scenario
from sim.market.checkpoint import Checkpoints, ResumeError
from sim.results.writer import TABLES, finished_slots, load_results
from sim.scenario import SCENARIOS_DIR, load_scenario
from tests.running import BLOCKHEMS, ROOT, run_until_slots

# what belongs to one chain and its keys (new on resume), or to the wall clock
CHAIN_COLUMNS = ["sender", "tx_hash", "block", "latency_s", "gas_used"]


def _scenario(tmp: Path, hours: float, **changes) -> Path:
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["time"]["hours"] = hours
    data["chain"]["dropout_probability"] = 0.1  # the dropout generator is part of the state
    for key, value in changes.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    path = tmp / f"quick-{hours}h.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _interrupted(scenario, folder: Path, progress) -> None:
    """Run until `progress`'s hook raises KeyboardInterrupt (mosaik's scheduler catches it when
    it lands inside a step, and the run returns; elsewhere it comes out here)."""
    try:
        run_scenario(scenario, folder, progress=progress)
    except KeyboardInterrupt:
        pass


def assert_same_tables(a: Path, b: Path) -> None:
    left, right = load_results(a), load_results(b)
    for table in TABLES:
        x = left[table].drop(columns=CHAIN_COLUMNS, errors="ignore").reset_index(drop=True)
        y = right[table].drop(columns=CHAIN_COLUMNS, errors="ignore").reset_index(drop=True)
        assert len(x) > 0, table
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=table)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("whole")
    scenario = _scenario(tmp, 12, **{"feeder.own_process": True})
    run_scenario(load_scenario(scenario), tmp / "whole", progress=False)
    return scenario, tmp / "whole"


def test_killed_and_resumed_run_gives_the_uninterrupted_tables(uninterrupted, tmp_path) -> None:
    """SIGKILL of the whole process group (run and grid process) after ten slots: the parts
    of the finished slots and maybe half a slot stay; `--resume` continues from the last
    checkpoint and ends with the uninterrupted run's tables."""
    scenario, whole = uninterrupted
    folder = tmp_path / "killed"
    args = ["run", str(scenario), "-o", str(folder), "-q"]
    proc = run_until_slots(args, folder, 10, stdout=subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = len(finished_slots(folder))
    assert 10 <= killed_at < 48
    rounds = Checkpoints(folder).rounds("dso")
    assert rounds and len(rounds) <= 2 and max(rounds) <= killed_at

    resumed = subprocess.run(
        [*BLOCKHEMS, "run", "--resume", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first = max(rounds)
    assert f"blockhems: resuming at slot {first + 1} scenario quick" in resumed.stdout
    assert "Traceback" not in resumed.stderr
    assert_same_tables(whole, folder)
    assert not (folder / "checkpoint").exists()  # a finished run keeps none
    assert (folder / "summary.json").exists() and (folder / "dispatch.png").exists()


def test_resume_with_shards_and_csv_tables(tmp_path) -> None:
    """Interrupted after five slots (a Ctrl-C inside the run, caught by mosaik's scheduler),
    with two shard processes and CSV tables: the resumed run's tables are the whole run's."""
    scenario = load_scenario(_scenario(tmp_path, 3, **{"homes.shards": 2, "outputs.format": "csv"}))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_scenario(scenario, whole, progress=False)

    def stop_after_five(used, first_round):
        def on_slot(row: dict) -> None:
            if row["round"] == 4:
                raise KeyboardInterrupt  # what Ctrl-C raises in the main process

        return on_slot

    _interrupted(scenario, cut, stop_after_five)
    assert finished_slots(cut) == list(range(5))
    assert (cut / "slots.csv").exists()
    outcome = run_scenario(load_scenario(cut / "scenario.yaml"), cut, resume=True)
    # round 5's DSO checkpoint would be written at round 5's price phase (after the meter
    # reading of round 4), which the interruption came before: round 4 runs again
    assert outcome.parts.schedule.first_round == 4
    assert_same_tables(whole, cut)


def test_checkpoint_files_round_trip_and_keep_the_two_latest(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path)
    state = {
        "array": np.arange(6.0).reshape(2, 3),
        "nothing": None,
        "generator": np.random.default_rng(3).bit_generator.state,  # integers beyond 64 bits
        "lambdas": {"1": 0.25},
    }
    for round_ in (1, 2, 3):
        checkpoints.save("homes", round_, state)
    assert checkpoints.rounds("homes") == [2, 3]
    loaded = checkpoints.load("homes", 3)
    np.testing.assert_array_equal(loaded["array"], state["array"])
    assert loaded["nothing"] is None and loaded["lambdas"] == {"1": 0.25}
    rng = np.random.default_rng()
    rng.bit_generator.state = loaded["generator"]
    assert rng.random() == np.random.default_rng(3).random()
    assert not list(tmp_path.glob("checkpoint/*.tmp"))
    # the homes' file of the next round comes before the DSO's: resume where both are
    checkpoints.save("dso", 2, state)
    assert checkpoints.resume_round(list(range(3)), 12) == 2
    with pytest.raises(ResumeError, match="finished all 12 slots"):
        checkpoints.resume_round(list(range(12)), 12)
    with pytest.raises(ResumeError, match="no checkpoint to resume from"):
        Checkpoints(tmp_path / "other").resume_round([0, 1], 12)


def test_fleet_state_continues_the_same_slots(tmp_path) -> None:
    """A fleet restored from another's state between slots runs the next slots as it would."""
    from sim.market.setup import build_fleet
    from sim.scenario import parse_scenario

    scenario = parse_scenario(yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text()), "t")
    first, second = build_fleet(scenario, 22), build_fleet(scenario, 22)
    first.train()
    second.train()
    price = 0.12
    for slot in range(3):
        _, lmax = first.compute_ranges(slot, price, price)
        first.dispatch(slot, lmax)
    second.restore(first.state())
    for slot in range(3, 6):
        runs = []
        for fleet in (first, second):
            lmin, lmax = fleet.compute_ranges(slot, 0.05, 0.3)
            runs.append((lmin, lmax, fleet.dispatch(slot, 0.5 * (lmin + lmax))))
        for a, b in zip(*runs, strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(Exception, match="not the same fleet"):
        build_fleet(scenario, 22).restore({**first.state(), "soc_kwh": np.zeros(3)})


def test_folders_that_cannot_be_resumed_are_one_line(uninterrupted, tmp_path, capsys) -> None:
    scenario, whole = uninterrupted
    cases = [
        (["run", "--resume", str(whole)], "finished all 48 slots: nothing to resume"),
        (["run", "--resume", str(tmp_path)], "not a results folder of `blockhems run`"),
        (["run", str(scenario), "--resume", str(whole)], "drop a scenario"),
        (["run", "--resume", str(whole), "--format", "csv"], "drop --format"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    # a damaged checkpoint: named, and the way on
    damaged = tmp_path / "damaged"
    cut = load_scenario(_scenario(tmp_path, 2))

    def stop_after_two(used, first_round):
        def on_slot(row: dict) -> None:
            if row["round"] == 1:
                raise KeyboardInterrupt

        return on_slot

    _interrupted(cut, damaged, stop_after_two)
    # the folder's scenario changed under the checkpoints: named, not a traceback
    scenario_yaml = damaged / "scenario.yaml"
    original = scenario_yaml.read_text()
    changed = yaml.safe_load(original)
    changed.setdefault("aggregation", {})["target_group_size"] = 5  # phase a: two groups
    scenario_yaml.write_text(yaml.safe_dump(changed))
    assert main(["run", "--resume", str(damaged), "-q"]) == 1
    err = capsys.readouterr().err
    assert "the folder's scenario.yaml changed since it was written" in err, err
    scenario_yaml.write_text(original)
    latest = Checkpoints(damaged).rounds("dso")[-1]
    Checkpoints(damaged).path("dso", latest).write_bytes(b"not a checkpoint")
    assert main(["run", "--resume", str(damaged), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"dso-{latest:06d}.npz cannot be read" in err and "remove it" in err
