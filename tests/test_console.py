"""The console of `blockhems run` (issue 14 item 3) and its results formats (item 4), on real
runs of one hour of the quick scenario through the command line: the default run shows the
scenario line, a few plain progress lines (output is not a terminal), no mosaik INFO, no
UserWarning and no solver banner; `-q` prints the summary only; `-v` brings mosaik's INFO
back; an interrupted run exits cleanly and leaves a readable folder; Parquet and CSV folders
read back to identical frames and both plot."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.console import PLAIN_LINES, SlotBar, clock, slot_status
from sim.results.writer import TABLES, finished_slots, load_results
from sim.scenario import SCENARIOS_DIR
from tests.running import BLOCKHEMS, ROOT, run_until_slots

SUMMARY_PREFIXES = (
    "limits:",
    "slots:",
    "phase a:",
    "phase b:",
    "phase c:",
    "voltage band:",
    "energy not served:",
    "slot-to-slot change per group:",
    "gas per slot:",
    "keys:",
    "wall time:",
    "results:",
)
NOISE = ("INFO", "UserWarning", "HiGHS", "Task was destroyed", "Traceback", "\r")


def _scenario(tmp: Path, hours: float, own_process: bool = False) -> Path:
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["time"]["hours"] = hours
    data["feeder"]["own_process"] = own_process
    path = tmp / f"quick-{hours}h-{own_process}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _blockhems(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BLOCKHEMS, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """One hour (4 slots) run twice: default (Parquet) and `-q --format csv`."""
    tmp = tmp_path_factory.mktemp("console")
    scenario = _scenario(tmp, 1)
    out = {}
    for name, extra in (("parquet", []), ("csv", ["-q", "--format", "csv"])):
        folder = tmp / name
        out[name] = folder, _blockhems("run", str(scenario), "-o", str(folder), *extra)
    return out


def test_default_console_names_scenario_and_folder_and_shows_no_noise(runs) -> None:
    folder, proc = runs["parquet"]
    lines = proc.stdout.splitlines()
    assert lines[0] == f"blockhems: scenario quick (4 slots of 15 min) -> {folder} (parquet)"
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, noise
    progress = proc.stderr.splitlines()
    # not a terminal: at most PLAIN_LINES plain lines, the last one the last slot
    assert 1 <= len(progress) <= PLAIN_LINES
    assert all(line.startswith("slot ") for line in progress), progress
    assert progress[-1].startswith("slot 4/4  09:45  λ ")
    assert "limits kept" in progress[-1] and "(broken in 0 of 4 slots)" in progress[-1]
    assert [line.split(":")[0] + ":" for line in lines[1:]] == list(SUMMARY_PREFIXES)


def test_quiet_prints_only_the_summary(runs) -> None:
    folder, proc = runs["csv"]
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] + ":" for line in lines] == list(SUMMARY_PREFIXES)
    assert lines[-1] == f"results: {folder} (tables, summary.json, 6 plots)"


def test_parquet_and_csv_folders_read_back_identically(runs) -> None:
    (pq_dir, _), (csv_dir, _) = runs["parquet"], runs["csv"]
    written = sorted(p.name for p in pq_dir.glob("*.parquet"))
    assert written == sorted(f"{t}.parquet" for t in TABLES)
    assert not list(pq_dir.glob("*.csv")) and not list(pq_dir.glob("*.parts"))
    assert sorted(p.name for p in csv_dir.glob("*.csv")) == sorted(f"{t}.csv" for t in TABLES)
    a, b = load_results(pq_dir), load_results(csv_dir)
    for table in TABLES:
        assert list(a[table].columns) == list(b[table].columns), table
        assert a[table].dtypes.equals(b[table].dtypes), table
        if table != "transactions":  # the two runs had different random keys
            pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)
    # what the keys do not change of the transactions
    same = ["label", "round", "status"]
    pd.testing.assert_frame_equal(a["transactions"][same], b["transactions"][same])
    types = a["slots"].dtypes
    assert types["round"] == "int64" and types["lambda"] == "float64"
    assert types["dso_infeasible"] == "bool" and types["homes_submitted"] == "int64"
    assert a["homes"].dtypes["smart"] == "bool" and a["homes"].dtypes["home"] == "int64"
    assert a["voltages"].phase.isin(["a", "b", "c"]).all()
    assert a["transactions"].dtypes["round"] == "Int64"
    assert a["transactions"].dtypes["gas_used"] == "int64"
    assert finished_slots(pq_dir) == finished_slots(csv_dir) == [0, 1, 2, 3]


def test_plot_reads_both_formats(runs, tmp_path) -> None:
    for name in ("parquet", "csv"):
        folder, _ = runs[name]
        for png in folder.glob("*.png"):
            png.unlink()
        proc = _blockhems("plot", str(folder))
        files = [Path(line) for line in proc.stdout.splitlines()]
        assert len(files) == 6 and all(f.stat().st_size > 10_000 for f in files), name


def test_leakage_reads_parquet(runs) -> None:
    from sim.privacy.leakage import leakage_frame

    (pq_dir, _), (csv_dir, _) = runs["parquet"], runs["csv"]
    pd.testing.assert_frame_equal(leakage_frame(pq_dir), leakage_frame(csv_dir))


def test_interrupted_verbose_run_exits_cleanly_and_keeps_its_slots(tmp_path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) after two slots, with
    the grid in its own process as in the default scenario: exit 130 with one line, no
    pending-task noise and no traceback of the grid process, mosaik's INFO shown (-v), and a
    folder whose finished slots are complete in every table."""
    folder = tmp_path / "interrupted"
    scenario = _scenario(tmp_path, 12, own_process=True)  # 48 slots: time to interrupt
    proc = run_until_slots(
        ["run", str(scenario), "-o", str(folder), "-v"],
        folder,
        2,
        stdout=subprocess.PIPE,
        text=True,
        # as from a terminal: Ctrl-C's default action, even if this test runs where SIGINT is
        # ignored (a background job of a non-interactive shell inherits SIG_IGN)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    shown = err[-3000:]
    assert "blockhems: interrupted; finished slots are kept in the results folder" in err, shown
    assert "Task was destroyed" not in err and "Traceback" not in err, shown
    assert " INFO mosaik" in err, shown  # mosaik's INFO log, at -v
    assert "Simulator GridProcessSim tries to connect" in err, shown  # the grid process's, at -v
    done = finished_slots(folder)
    assert 2 <= len(done) < 48 and done == list(range(len(done))), (done, shown)
    tables = load_results(folder)
    for table in ("groups", "homes", "dlmp", "voltages", "lines"):
        assert set(done) <= set(tables[table]["round"]), table
    homes = tables["homes"]
    assert (homes[homes["round"].isin(done)].groupby("round").size() == 22).all()


def test_interrupt_caught_inside_mosaik_still_exits_130(tmp_path, monkeypatch, capsys) -> None:
    """A Ctrl-C that lands inside mosaik's scheduler is caught there ("Simulation canceled")
    and the run returns as if it had ended: still an interruption (exit 130), not "a simulator
    stopped" (exit 1). The CI clone saw exit 1 when the signal landed there."""
    import sim.cli as cli
    import sim.cosim.world as world

    def run_caught_by_mosaik(*args, **kwargs):
        try:
            cli._interrupt(signal.SIGINT, None)  # what the handler does when Ctrl-C arrives
        except KeyboardInterrupt:
            pass  # mosaik's scheduler: logs "Simulation canceled. Terminating ..." and returns

    monkeypatch.setattr(world, "run_scenario", run_caught_by_mosaik)
    scenario = _scenario(tmp_path, 1)
    assert cli.main(["run", str(scenario), "-o", str(tmp_path / "out"), "-q"]) == 130
    assert "blockhems: interrupted; finished slots are kept" in capsys.readouterr().err
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # the forced exit was cancelled


def test_clock_and_slot_status() -> None:
    assert clock(9.25) == "09:15" and clock(24 + 13.75) == "day 2 13:45"
    row = {f"v_{m}_{ph}_pu": 1.0 for m in ("min", "max") for ph in "abc"}
    row.update(round=0, max_line_loading_pct=50.0, lines_over_limit=0, max_trafo_loading_pct=40.0)
    assert slot_status(row, (0.9, 1.1)) == "limits kept"
    row.update(v_min_b_pu=0.85, lines_over_limit=2, max_trafo_loading_pct=101.0)
    assert slot_status(row, (0.9, 1.1)) == (
        "LIMITS BROKEN (1 phase(s) out of band, 2 line-phase(s) over, transformer over)"
    )


def test_slot_bar_off_a_terminal_writes_a_tenth_of_the_slots(tmp_path) -> None:
    row = {f"v_{m}_{ph}_pu": 1.0 for m in ("min", "max") for ph in "abc"}
    row.update(max_line_loading_pct=50.0, lines_over_limit=0, max_trafo_loading_pct=40.0)
    with open(tmp_path / "log", "w+") as log:
        bar = SlotBar(96, (0.9, 1.1), stream=log)
        for k in range(96):
            high = 1.2 if k == 5 else 1.0
            bar({**row, "round": k, "hour": k * 0.25, "lambda": 0.5, "v_max_a_pu": high})
        bar.close()
        log.seek(0)
        lines = log.read().splitlines()
    assert len(lines) == PLAIN_LINES
    assert lines[-1] == "slot 96/96  23:45  λ 0.500  limits kept  (broken in 1 of 96 slots)"


def test_output_to_a_reader_that_went_away_is_no_traceback() -> None:
    """`blockhems validate ... | head -0`: the pipe is closed before the output comes; the
    program ends with 141 (SIGPIPE's code) and no traceback."""
    proc = subprocess.Popen(
        [*BLOCKHEMS, "validate", str(SCENARIOS_DIR / "quick.yaml")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
