"""A run's child processes: none outlives a SIGKILL of the run; they start on a busy machine;
a node that goes away or freezes stops the run with one line, its finished slots kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import mosaik
import pytest
import yaml

from sim.chain.connection import connect
from sim.chain.node import RevmNode
from sim.chain.transport import NodeUnreachable
from sim.children import START_TIMEOUT_S, child_sim_config
from sim.cosim.world import SIM_CONFIG
from sim.protocol import Schedule
from sim.scenario import SCENARIOS_DIR, dump_scenario, parse_scenario

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
CLI = [sys.executable, "-m", "sim.cli"]
REPO = Path(__file__).resolve().parents[1]


def _scenario(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _children(pid: int) -> dict[int, str]:
    """Live processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmd
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def _wait_for(check, timeout_s: float, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    return check()


def _slots(out: Path) -> int:
    """Finished slots of a results folder, in whichever table format (0 before the first)."""
    from sim.results.writer import ResultsError, finished_slots

    try:
        return len(finished_slots(out))
    except (ResultsError, OSError, ValueError):
        return 0


@pytest.fixture
def busy() -> Iterator[int]:
    """Two busy loops per core for the duration of a test."""
    n = 2 * (os.cpu_count() or 1)
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield n
    finally:
        for proc in loops:
            proc.kill()
            proc.wait()


def test_no_orphan_after_sigkill_of_a_sharded_run(tmp_path: Path) -> None:
    """Grid process, two shards and the revm node: all gone within seconds of a SIGKILL."""
    path = _scenario(tmp_path, homes__shards=2, feeder__own_process=True)
    run = subprocess.Popen(
        [*CLI, "run", str(path), "-q", "-o", str(tmp_path / "out")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kinds = ("sim.chain.revm.node", "sim.cosim.shard", "sim.cosim.grid_process")

        def all_started() -> dict[int, str]:
            kids = _children(run.pid)
            started = sum(any(k in cmd for cmd in kids.values()) for k in kinds)
            shards = sum("sim.cosim.shard" in cmd for cmd in kids.values())
            return kids if started == 3 and shards == 2 else {}

        kids = _wait_for(all_started, 120)
        assert kids, f"children never all started: {_children(run.pid)}"
    finally:
        run.kill()  # SIGKILL: the run cleans up nothing itself
        run.wait()
    start = time.monotonic()
    left = _wait_for(lambda: not [p for p in kids if _alive(p)], 5.0, 0.05)
    gone_s = time.monotonic() - start
    assert left, f"orphans 5 s after SIGKILL: {[kids[p] for p in kids if _alive(p)]}"
    assert gone_s < 5.0


def test_children_start_under_cpu_load(busy: int, tmp_path: Path) -> None:
    """With two busy loops per core, the grid process and a shard connect to mosaik and answer
    its init well inside mosaik's default start timeout (10 s, which the grid process used
    to miss under load: it imported pandapower and built the feeder first; now that runs in
    its first step, which mosaik does not time, and a full run of both is the orphan test)."""
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    scenario = parse_scenario(data)
    schedule = Schedule(900, 1, 2, 300, 120)
    world = mosaik.World(
        child_sim_config(SIM_CONFIG),
        mosaik_config={"start_timeout": START_TIMEOUT_S},
        skip_greetings=True,
        configure_logging=False,
    )
    try:
        start = time.monotonic()
        world.start(
            "GridProcess",
            schedule=asdict(schedule),
            scenario_yaml=dump_scenario(scenario),
            slot_offset=36,
        ).Grid()
        grid_s = time.monotonic() - start
        start = time.monotonic()
        world.start(
            "HomesShard",
            schedule=asdict(schedule),
            scenario_yaml=dump_scenario(scenario),
            n_homes=22,
            home_ids=[0],
            groups=[],
            url="http://127.0.0.1:9",
            contract="0x" + "00" * 20,
            registrar="0x" + "00" * 20,
            home_keys=[],
            lead=False,
            name="Homes shard 0",
        )
        shard_s = time.monotonic() - start
    finally:
        world.shutdown()
    print(f"under {busy} busy loops: grid connected in {grid_s:.1f} s, shard {shard_s:.1f} s")
    assert grid_s < 10.0 and shard_s < 10.0, (grid_s, shard_s)


def test_node_gone_mid_run_stops_with_one_line(tmp_path: Path) -> None:
    """A JSON-RPC node killed after two slots: exit 1, one line naming the node and the slot,
    the two finished slots kept, and how to resume; resumed on a new node, the run ends."""
    out = tmp_path / "out"
    with RevmNode() as node:
        path = _scenario(tmp_path, chain__backend="rpc", chain__url=node.url)
        run = subprocess.Popen(
            [*CLI, "run", str(path), "-q", "-o", str(out)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert _wait_for(lambda: _slots(out) >= 2, 120, 0.1), "no two slots in 120 s"
            os.kill(node._proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            killed = time.monotonic()
            _, err = run.communicate(timeout=60)
        finally:
            run.kill()
        stopped_s = time.monotonic() - killed
    kept = _slots(out)
    lines = [line for line in err.splitlines() if line.startswith("blockhems: ")]
    assert run.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert len(lines) == 1, lines  # one line (the start line went to stdout)
    message = lines[-1]
    assert f"the JSON-RPC node at {node.url} is gone" in message
    assert f"slot {kept + 1} of 12" in message or f"slot {kept} of 12" in message
    assert f"{kept} finished slots kept in {out}" in message
    assert f"continue with `blockhems run --resume {out}`" in message
    assert kept >= 2 and not (out / "summary.json").exists()
    assert stopped_s < 15.0
    with RevmNode() as fresh:
        resumed = subprocess.run(
            [*CLI, "run", "--resume", str(out), "--url", fresh.url, "-q"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _slots(out) == 12 and (out / "summary.json").exists()


def test_frozen_node_times_out_in_bounded_time() -> None:
    """SIGSTOP of the node: the next request fails after the timeout, not after web3's
    retries (155 s before), as one NodeUnreachable naming the node."""
    with RevmNode() as node:
        chain = connect("rpc", node.url, timeout_s=1.0)
        chain.now()
        pid = node._proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(NodeUnreachable, match=r"did not answer eth_getBlockByNumber"):
                chain.now()
            frozen_s = time.monotonic() - start
        finally:
            os.kill(pid, signal.SIGCONT)
    assert frozen_s < 3.0
    with pytest.raises(NodeUnreachable, match=rf"the JSON-RPC node at {node.url} is gone"):
        chain.now()  # stopped now: refused at once


@pytest.mark.parametrize(
    ("sig", "delay_s", "code"), [("SIGINT", 0.3, 130), ("SIGINT", 2.5, 130), ("SIGTERM", 2.5, 143)]
)
def test_interrupt_in_the_first_seconds_is_one_line(
    tmp_path: Path, sig: str, delay_s: float, code: int
) -> None:
    """Ctrl-C (or SIGTERM) while the program still loads its modules or builds the run: one
    line and exit 130 (143), no KeyboardInterrupt traceback; stopped within 2 s."""
    program = Path(sys.executable).with_name("blockhems")
    run = subprocess.Popen(
        [str(program), "run", str(SCENARIOS_DIR / "quick.yaml"), "-q", "-o", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job ignores SIGINT, and Python then keeps it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay_s)
    run.send_signal(getattr(signal, sig))
    start = time.monotonic()
    _, err = run.communicate(timeout=30)
    stopped_s = time.monotonic() - start
    lines = [line for line in err.splitlines() if line.startswith("blockhems: ")]
    assert run.returncode == code, err[-2000:]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert stopped_s < 2.0


def test_a_simulator_process_failure_is_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    """mosaik logs a simulator process's exception with its traceback and ends the run
    quietly; the command line keeps the one line (named process, message with the slot)."""
    from loguru import logger

    from sim.cli import _mosaik_failures
    from sim.console import configure_logging

    configure_logging("INFO")  # as `blockhems run` does first
    aborted: list[str] = []
    with _mosaik_failures(aborted):
        logger.error(
            "Simulator HomesShard-1 aborted the simulation with error NodeUnreachable(the "
            "hardhat node at http://127.0.0.1:1 is gone (slot 3 of 12, submit)). Further "
            'information provided:\nTraceback (most recent call last):\n  File "x.py"'
        )
    assert aborted == [
        "HomesShard-1: the hardhat node at http://127.0.0.1:1 is gone (slot 3 of 12, submit)"
    ]
    assert "Traceback" not in capfd.readouterr().err


def test_a_stop_whose_clean_up_hangs_still_ends_with_one_line() -> None:
    """After Ctrl-C the run's clean-up gets STOP_GRACE_S; a clean-up that hangs (here: a sleep)
    is cut off with the same one line and exit code."""
    code = "import time, sim.cli as c; c.STOP_GRACE_S = 0.5; c._stop_or_exit(); time.sleep(30)"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 130
    assert time.monotonic() - start < 10
    assert "blockhems: interrupted; the clean-up did not end within" in done.stderr
