"""Hostile and nonsensical scenario files: each is refused with one line naming the problem,
in well under two seconds (small generated bombs), by `validate` and by `run` alike."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import BlockhemsError
from sim.market.plan import plan_run
from sim.results.folder import OutputDirError, prepare_output_dir, release_output_dir
from sim.scenario import (
    FEEDER_NAMES,
    MAX_SCENARIO_BYTES,
    SCENARIOS_DIR,
    ScenarioError,
    load_scenario,
)

QUICK = (SCENARIOS_DIR / "quick.yaml").read_text()
LIMIT_S = 2.0


def refused(make: Callable[[], object], match: str) -> float:
    """Seconds until `make()` raised a BlockhemsError matching `match`."""
    start = time.perf_counter()
    with pytest.raises(BlockhemsError, match=match) as info:
        make()
    elapsed = time.perf_counter() - start
    assert "\n" not in str(info.value)
    assert elapsed < LIMIT_S, f"refused after {elapsed:.2f} s"
    return elapsed


def write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def quick_with(old: str, new: str) -> str:
    assert old in QUICK
    return QUICK.replace(old, new, 1)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import the feeder builders once, so that the time bounds measure the checks."""
    plan_run(load_scenario(SCENARIOS_DIR / "quick.yaml"))


# ------------------------------------------------------------------ the file itself


def test_binary_file(tmp_path: Path) -> None:
    path = write(tmp_path, bytes(range(256)) * 16)
    refused(lambda: load_scenario(path), r"is a binary file")


def test_not_utf8_text(tmp_path: Path) -> None:
    path = write(tmp_path, QUICK.encode() + b"description: caf\xe9\n")
    refused(lambda: load_scenario(path), r"is not UTF-8 text \(byte 0xe9")


def test_directory(tmp_path: Path) -> None:
    refused(lambda: load_scenario(tmp_path), r"is a directory")


def test_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    refused(lambda: load_scenario(fifo), r"not a regular file")


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:  # sparse: 50 MB without writing them
        f.truncate(50 * 1024 * 1024)
    refused(lambda: load_scenario(path), rf"may be at most {MAX_SCENARIO_BYTES:,} bytes")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    refused(lambda: load_scenario(path), r"got an empty file")


def test_alias_bomb(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\n" + QUICK)
    refused(lambda: load_scenario(path), r"line 2: alias \*a0 refused")


def test_alias_under_ranges(tmp_path: Path) -> None:
    text = quick_with("    pv_kwp: [2.0, 4.0]", "    pv_kwp: &r [2.0, 4.0]\n    hvac_kw: *r")
    refused(lambda: load_scenario(write(tmp_path, text)), r"alias \*r refused")


def test_bracket_bomb(tmp_path: Path) -> None:
    path = write(tmp_path, "name: " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(lambda: load_scenario(path), r"nest(ed deeper than 16 levels|ing depth)")


def test_deep_block_nesting(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "  " * 40 + "x: 1\n"
    refused(lambda: load_scenario(write(tmp_path, text)), r"line 17: nested deeper than 16")


def test_node_bomb(tmp_path: Path) -> None:
    text = quick_with("[0.12]", "[" + ", ".join(["0.1"] * 50_000) + "]")
    refused(lambda: load_scenario(write(tmp_path, text)), r"more than 20000 YAML nodes")


def test_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, QUICK + "name: again\n")
    refused(lambda: load_scenario(path), r"duplicate key 'name' \(first on line 3\)")


def test_duplicate_nested_key(tmp_path: Path) -> None:
    text = quick_with("  seed: 7\n", "  seed: 7\n  seed: 8\n")
    refused(lambda: load_scenario(write(tmp_path, text)), r"duplicate key 'seed'")


def test_merge_key(tmp_path: Path) -> None:
    text = quick_with("homes:\n", "homes:\n  <<: {seed: 3}\n")
    refused(lambda: load_scenario(write(tmp_path, text)), r"merge keys \(<<\) are not allowed")


# ------------------------------------------------------------------ each field against the run


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: quick", "name: ../../../x", r"name: must be 1-64 letters"),
        ("name: quick", "name: ''", r"name: must be 1-64 letters"),
        ("name: quick", "name: a/b", r"name: must be 1-64 letters"),
        ("  smart_share: 1.0", "  smart_share: 1.0\n  count: true", r"homes\.count: .*integer"),
        ("  seed: 7", "  seed: 7.0", r"homes\.seed: .*integer"),
        ("  seed: 7", "  seed: -1", r"homes\.seed: .*greater than or equal to 0"),
        ("  hours: 3", "  days: 366", r"time\.days: .*less than or equal to 365"),
        ("  start_date: 2026-07-15", "  start_date: 2026-12-30\n  days: 3", r"weather year"),
        ("  hours: 3", "  hours: 30", r"hours 30 run past the end of days 1"),
        ("slot_s: 900", "slot_s: 86400", r"start_hour 9 is not at a slot boundary"),
        ("[0.12]", "[1.0e13]", r"price 1e\+?13 \$/kWh is outside"),
        ("[0.12]", "[-0.05]", r"price -0\.05 \$/kWh is outside \[0\.0, 10\.0\]"),
        ("[0.12]", "[.nan]", r"dso\.energy_price_usd_per_kwh\.0: .*finite"),
        ("    pv_kwp: [2.0, 4.0]", "    pv_kwp: [true, 4.0]", r"ranges\.pv_kwp: True is not"),
        ("  backend: revm", "  backend: revm\n  url: file:///etc", r"chain: url .* is not an http"),
        (
            "  name: small\n",
            "  name: small\n  options:\n    min_group_size: 2\n",
            r"feeder\.options\.min_group_size: 2 is below aggregation\.min_group_size 5",
        ),
        (
            "  name: small\n",
            "  name: small\n  options:\n    home_kw: 1e9\n",
            r"feeder\.options\.home_kw: .*less than or equal to 50",
        ),
        (
            "  name: small\n",
            "  name: small\n  options:\n    n_main: 5\n",
            r"feeder\.options\.n_main: unknown key",
        ),
        ("  load_profile_pool: 8", "  load_profile_pool: yes", r"load_profile_pool: .*integer"),
        ("  plots: true", "  plots: 1", r"outputs\.plots: .*boolean"),
    ],
)
def test_field_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    if old == "  plots: true":
        text, old = QUICK + "outputs:\n  plots: true\n", "  plots: true"
        text = text.replace(old, new)
    else:
        text = quick_with(old, new)
    refused(lambda: load_scenario(write(tmp_path, text)), message)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("battery_kw: [1.0, 2.0]", "battery_kw: [2.0, 1.0]", r"ranges\.battery_kw: .*inverted"),
        ("battery_kw: [1.0, 2.0]", "battery_kw: [-2.0, 1.0]", r"ranges\.battery_kw: must be >"),
        ("  seed: 7", "  seed: 7\n  shards: 64", r"homes\.shards = 64 exceeds the 3 aggregation"),
        ("  ampacity_factor: 1.0", "  v_margin_pu: 0.09", r"dso\.v_margin_pu: .*leaves nothing"),
    ],
)
def test_run_checks_in_validate(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write(tmp_path, quick_with(old, new))
    refused(lambda: plan_run(load_scenario(path)), message)


def test_feeder_options_are_those_of_the_builders() -> None:
    from grid_models import FEEDERS

    assert tuple(FEEDERS) == FEEDER_NAMES


# ------------------------------------------------------------------ the results folder


def test_output_is_a_file(tmp_path: Path) -> None:
    target = write(tmp_path, "x", "file")
    refused(lambda: prepare_output_dir(target), r"is a file, not a folder")
    refused(lambda: prepare_output_dir(target / "below"), r"file is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    refused(lambda: prepare_output_dir(locked / "run"), r"cannot be created")
    refused(lambda: prepare_output_dir(locked), r"is not writable")


def test_earlier_summary_and_plots_are_removed(tmp_path: Path) -> None:
    for name in ("summary.json", "dispatch.png", "slots.csv", "scenario.yaml", "notes.txt"):
        (tmp_path / name).write_text("old")
    prepare_output_dir(tmp_path)
    release_output_dir(tmp_path)
    # the user's own file stays; the lock file of the run that holds the folder is added
    assert sorted(p.name for p in tmp_path.iterdir()) == [".blockhems-lock", "notes.txt"]


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    cases = {
        "binary": (write(tmp_path, b"\x00\x01" * 100, "bin.yaml"), "binary file"),
        "folder": (tmp_path, "is a directory"),
        "shards": (write(tmp_path, quick_with("  seed: 7", "  seed: 7\n  shards: 9")), "exceeds"),
        "days": (write(tmp_path, quick_with("  hours: 3", "  days: 366"), "d.yaml"), "365"),
    }
    for path, message in cases.values():
        extra = ["-o", str(tmp_path / "out")] if command == "run" else []
        start = time.perf_counter()
        assert main([command, str(path), *extra]) == 1
        err = capsys.readouterr().err
        assert time.perf_counter() - start < LIMIT_S
        assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before the folder was touched


def test_cli_output_folder_refused_before_setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = write(tmp_path, "x", "blocker")
    start = time.perf_counter()
    assert main(["run", str(SCENARIOS_DIR / "quick.yaml"), "-o", str(blocker / "out")]) == 1
    err = capsys.readouterr().err
    assert time.perf_counter() - start < LIMIT_S
    assert err.count("\n") == 1 and "blocker is a file, not a folder" in err


def test_shipped_scenarios_still_pass() -> None:
    for path in sorted(SCENARIOS_DIR.glob("**/*.yaml")):
        try:
            load_scenario(path)
        except ScenarioError as exc:  # pragma: no cover - the message is the failure
            pytest.fail(str(exc))
    assert OutputDirError.__mro__[1] is BlockhemsError


def test_validate_program_refuses_a_bomb_in_under_two_seconds(tmp_path: Path) -> None:
    """The whole `blockhems validate` process, imports included: a file's own mistakes come
    before the heavy modules (pandapower, web3) load."""
    import subprocess
    import sys

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\n" + QUICK)
    program = Path(sys.executable).with_name("blockhems")
    start = time.perf_counter()
    done = subprocess.run([str(program), "validate", str(path)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 1 and "alias *a0 refused" in done.stderr
    assert done.stderr.count("\n") == 1 and elapsed < LIMIT_S, (elapsed, done.stderr)


def test_a_folder_another_run_is_writing_is_refused(tmp_path, capsys) -> None:
    """Two runs into one folder (or `--resume` of a run still going) would interleave their
    tables: the second is refused at once, naming the folder and the holder's pid; the lock
    goes with the process that held it."""
    import subprocess
    import sys

    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from sim.results.folder import prepare_output_dir; "
            f"prepare_output_dir({str(folder)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(SCENARIOS_DIR / "quick.yaml"), "-o", str(folder), "-q"]) == 1
        err = capsys.readouterr().err
        assert (
            f"results folder {folder} is in use by another blockhems run (pid {holder.pid})" in err
        )
    finally:
        holder.kill()
        holder.wait()
    prepare_output_dir(folder)  # free again once the holder is gone
    release_output_dir(folder)
