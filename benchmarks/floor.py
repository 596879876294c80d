"""The floor of a simulated day on this machine, and `blockhems run`'s ratio to it (issue 14).

In one run:

1. `blockhems run SCENARIO -q` in a subprocess, timed by wall clock (imports, set-up, the
   day, tables, summary and plots: the command a researcher types).
2. The same scenario's market offline (`sim.offline.run_offline`: the same agents and
   decisions, no chain), with every primitive of a slot timed where it runs: each
   power-grid-model flow (the ground truth's and the DSO's AC checks), each stage-1 and
   stage-2 QP (through cvxpy, and HiGHS's own run time inside it), the fleet's ranges and
   dispatch. Each is counted as often as the day needs it.
3. A warm `runpp_3ph` of the ground truth's demand in a few slots (the other engine).
4. One slot's transactions on the in-process revm chain, fast path: the DSO's prices, the
   homes' masked submissions and recovery words, lambda, each phase one batch
   (`Chain.transact_many`: sign, execute, receipts; the masking is built before the clock
   starts), repeated over a few rounds.
5. Writing one slot of every results table (`ResultsWriter.append`), over a few slots.

Floor per day = the day's power flows at power-grid-model's time + the QPs at HiGHS's own
run time + the fleet's ranges and dispatch + slots x (one slot's chain batches + one slot's
writing). It leaves out what a run pays once (imports, set-up, mosaik, plots) and every
adapter between the primitives: the ratio says how far the command is from doing only the
work. Timings move with other work on the machine; the two figures of the ratio come from
the same run, and the load average is printed with them.

    .venv/bin/python benchmarks/floor.py --write --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from markdown_section import write_section  # noqa: E402

from sim.scenario import DEFAULT_SCENARIO, Scenario, load_scenario  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/floor.py --write --json"


@dataclass
class Tally:
    """Calls and seconds of one primitive over the day."""

    seconds: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)  # the solver's own run time, if any

    def add(self, seconds: float, inner: float | None = None) -> None:
        self.seconds.append(seconds)
        if inner is not None:
            self.inner.append(inner)

    @property
    def calls(self) -> int:
        return len(self.seconds)

    def median_ms(self, inner: bool = False) -> float:
        values = self.inner if inner else self.seconds
        return 1e3 * statistics.median(values) if values else float("nan")


def _wrap(owner: Any, name: str, record: Callable[[Any, tuple, float, Any], None]) -> Callable:
    """Replace ``owner.name`` by a timed call that passes (self-or-first-arg, args, seconds,
    result) to ``record``; returns a function that restores the original."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = original(*args, **kwargs)
        record(args[0] if args else None, args, time.perf_counter() - start, out)
        return out

    setattr(owner, name, timed)
    return lambda: setattr(owner, name, original)


def time_command(scenario_path: str) -> dict[str, Any]:
    """`blockhems run SCENARIO -q` in a subprocess: wall seconds and the run's own summary."""
    exe = Path(sys.executable).with_name("blockhems")
    command = [str(exe) if exe.exists() else shutil.which("blockhems") or "blockhems"]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "run", scenario_path, "-o", out, "-q"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"blockhems run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        summary = json.loads((Path(out) / "summary.json").read_text())
    return {"wall_s": wall, "summary": summary}


def time_offline_day(scenario: Scenario) -> tuple[dict[str, Tally], Any, list]:
    """The scenario's market offline with its primitives timed; returns the tallies, the
    offline run and the ground truth's (p_kw, q_kvar) per slot."""
    import sim.dso.stage1 as stage1
    import sim.dso.stage2 as stage2
    from grid_models.pgm import PGMPowerFlow
    from sim.hems.fleet import HEMSFleet
    from sim.offline import run_offline

    tallies = {k: Tally() for k in ("pgm_flow", "stage1", "stage2", "ranges", "dispatch")}
    demands: dict[int, list] = {}

    def flow(engine: Any, args: tuple, seconds: float, _: Any) -> None:
        tallies["pgm_flow"].add(seconds)
        demands.setdefault(id(engine), []).append((np.array(args[1]), np.array(args[2])))

    def solver(name: str) -> Callable:
        def record(problem: Any, _: tuple, seconds: float, __: Any) -> None:
            tallies[name].add(seconds, problem.solver_stats.solve_time)

        return record

    restore = [
        _wrap(PGMPowerFlow, "__call__", flow),
        _wrap(stage1, "solve_with_fallback", solver("stage1")),
        _wrap(stage2, "solve_with_fallback", solver("stage2")),
        _wrap(HEMSFleet, "compute_points", lambda *a: tallies["ranges"].add(a[2])),
        _wrap(HEMSFleet, "dispatch", lambda *a: tallies["dispatch"].add(a[2])),
        _wrap(HEMSFleet, "dispatch_bid", lambda *a: tallies["dispatch"].add(a[2])),  # group
    ]
    try:
        run = run_offline(scenario)
    finally:
        for undo in restore:
            undo()
    # the ground truth's engine is the one called exactly once a slot, after the DSO's
    n = scenario.time.n_slots
    truth = [calls for calls in demands.values() if len(calls) == n]
    return tallies, run, truth[-1] if truth else []


def time_runpp(scenario: Scenario, demands: list, samples: int) -> Tally:
    """Warm `runpp_3ph` (warm start from the previous slot) of the ground truth's demand in
    `samples` slots spread over the day (the first call, cold, not counted)."""
    from grid_models.powerflow import run_power_flow
    from sim.scenario import build_scenario_feeder

    feeder = build_scenario_feeder(scenario)
    tally = Tally()
    picks = np.linspace(0, len(demands) - 1, samples + 1).round().astype(int)
    run_power_flow(feeder, *demands[picks[0]])
    for k in picks[1:]:
        start = time.perf_counter()
        run_power_flow(feeder, *demands[k])
        tally.add(time.perf_counter() - start)
    return tally


def time_chain_slots(scenario: Scenario, rounds: int) -> tuple[Tally, int, list]:
    """One slot's transactions on the scenario's chain (revm in process, fast path), each
    phase one batch; returns the slot tally, transactions per slot and the last round's
    transaction records."""
    from sim.chain.private import Status
    from sim.hems import smart_homes
    from sim.market.setup import aggregation_groups, fleet_config, open_chain, open_market
    from sim.scenario import build_scenario_feeder, resolve_scenario

    feeder = build_scenario_feeder(scenario)
    scenario = resolve_scenario(scenario, feeder)
    smart = smart_homes(fleet_config(scenario, feeder.n_homes))
    groups = aggregation_groups(feeder, smart, scenario.aggregation.min_group_size)
    chain, node = open_chain(scenario)
    if node is not None:
        node.stop()
        raise SystemExit("the floor's chain is the in-process revm backend (chain.backend: revm)")
    market, clients = open_market(scenario, chain, groups)
    group_of = {h: g for g, members in groups.items() for h in members}
    contract = next(iter(clients.values())).contract
    rng = np.random.default_rng(14)
    tally = Tally()
    per_slot = 0
    records: list = []
    for round_ in range(rounds + 1):  # round 0 warms up (gas estimates, nonces)
        seen = len(chain.records)
        bands = {g: (0.08, 0.21) for g in groups}
        deadline = chain.now() + scenario.chain.deadline_s
        lower = rng.integers(-3_000, 5_000, len(clients))
        upper = lower + rng.integers(0, 3_000, len(clients))
        spent = 0.0
        start = time.perf_counter()
        market.dso.open_rounds(round_, bands, deadline)
        spent += time.perf_counter() - start
        requests = [  # the masking, before the clock
            client.range_request(round_, int(lo), int(hi))
            for client, lo, hi in zip(clients.values(), lower, upper, strict=True)
        ]
        start = time.perf_counter()
        chain.transact_many(requests)
        spent += time.perf_counter() - start
        states = contract.round_states(round_, sorted(groups))
        recovery = [
            client.recovery_request(round_, states[group_of[h]])
            for h, client in clients.items()
            if states[group_of[h]].status == Status.RECOVERY
            and client.needs_recovery(round_, states[group_of[h]])
        ]
        start = time.perf_counter()
        chain.transact_many(recovery)
        market.dso.post_lambda(round_, 0.5)
        spent += time.perf_counter() - start
        if round_:
            tally.add(spent)
        per_slot = len(chain.records) - seen
        records = chain.records[seen:]
    return tally, per_slot, records


def time_writing(scenario: Scenario, run: Any, chain_records: list, samples: int) -> Tally:
    """`ResultsWriter.append` of every table of one slot (rows as the simulators give them)."""
    from sim.results.writer import ResultsWriter

    tally = Tally()
    n = scenario.time.n_slots
    transactions = [r.as_dict() for r in chain_records]
    with tempfile.TemporaryDirectory() as out:
        writer = ResultsWriter(Path(out), run.scenario)
        for round_ in np.linspace(0, n - 1, samples).round().astype(int):
            rows = {
                name: table[table["round"] == round_].to_dict("records")
                for name, table in run.tables.items()
            }
            rows["transactions"] = [{**t, "round": int(round_)} for t in transactions]
            start = time.perf_counter()
            for name in sorted(rows, key=lambda t: t == "slots"):
                writer.append(name, rows[name])
            tally.add(time.perf_counter() - start)
    return tally


def measure(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    scenario = load_scenario(args.scenario)
    n = scenario.time.n_slots
    command = time_command(args.scenario) if not args.skip_command else None
    tallies, run, truth = time_offline_day(scenario)
    runpp = time_runpp(scenario, truth, args.samples)
    chain, tx_per_slot, records = time_chain_slots(scenario, args.rounds)
    writing = time_writing(scenario, run, records, args.samples)

    flows = tallies["pgm_flow"]
    s1, s2 = tallies["stage1"], tallies["stage2"]
    fleet_s = sum(tallies["ranges"].seconds) + sum(tallies["dispatch"].seconds)
    floor = {
        "power flows (power-grid-model)": sum(flows.seconds),
        "stage 1 QPs (HiGHS run time)": sum(s1.inner),
        "stage 2 QPs (HiGHS run time)": sum(s2.inner),
        "fleet ranges and dispatch": fleet_s,
        "chain batches (revm, fast path)": n * statistics.median(chain.seconds),
        "writing the tables": n * statistics.median(writing.seconds),
    }
    floor_day = sum(floor.values())
    fig: dict[str, Any] = {
        "scenario": scenario.name,
        "slots": n,
        "cores": os.cpu_count(),
        "date": dt.date.today().isoformat(),
        "load_start": [round(x, 1) for x in load_start],
        "load_end": [round(x, 1) for x in os.getloadavg()],
        "per_call_ms": {
            "pgm_flow": round(flows.median_ms(), 2),
            "runpp_3ph_warm": round(runpp.median_ms(), 1),
            "stage1_cvxpy": round(s1.median_ms(), 1),
            "stage1_highs": round(s1.median_ms(inner=True), 1),
            "stage2_cvxpy": round(s2.median_ms(), 1),
            "stage2_highs": round(s2.median_ms(inner=True), 1),
            "fleet_ranges": round(tallies["ranges"].median_ms(), 2),
            "fleet_dispatch": round(tallies["dispatch"].median_ms(), 2),
            "chain_slot": round(chain.median_ms(), 1),
            "write_slot": round(writing.median_ms(), 1),
        },
        "calls_per_day": {
            "pgm_flow": flows.calls,
            "stage1": s1.calls,
            "stage2": s2.calls,
            "transactions": tx_per_slot * n,
        },
        "floor_s": {k: round(v, 2) for k, v in floor.items()},
        "floor_day_s": round(floor_day, 2),
        "stage1_cvxpy_s": round(sum(s1.seconds), 2),
        "stage2_cvxpy_s": round(sum(s2.seconds), 2),
        "offline_wall_s": {k: round(v, 2) for k, v in run.wall_s.items()},
    }
    if command is not None:
        fig["command_wall_s"] = round(command["wall_s"], 2)
        fig["command_reported_wall_s"] = command["summary"].get("wall_s")
        fig["command_setup_s"] = command["summary"].get("setup_s")
        fig["command_step_s"] = command["summary"].get("step_s")
        fig["ratio"] = round(command["wall_s"] / floor_day, 2)
    return fig


def markdown(fig: dict[str, Any], scenario: str) -> str:
    c = fig["per_call_ms"]
    calls = fig["calls_per_day"]
    lines = [
        "<!-- floor:start -->",
        "## The floor of a day and `blockhems run`'s ratio to it (issue 14)",
        "",
        f"Command: `{COMMAND}`"
        + ("" if scenario == str(DEFAULT_SCENARIO) else f" (scenario `{scenario}`)")
        + "  ",
        f"Machine: {fig['cores']} cores; date {fig['date']}; load average "
        f"{', '.join(map(str, fig['load_start']))} at the start, "
        f"{', '.join(map(str, fig['load_end']))} at the end (other sessions' work).  ",
        f"Scenario {fig['scenario']}, {fig['slots']} slots; the command and the primitives "
        "timed in the same run (the command first, in a subprocess).",
        "",
    ]
    if "ratio" in fig:
        lines += [
            f"**`blockhems run`: {fig['command_wall_s']:.1f} s wall; floor "
            f"{fig['floor_day_s']:.1f} s a day; ratio {fig['ratio']:.2f}x.** "
            f"(The run reported {fig['command_reported_wall_s']} s from its start to the last "
            f"slot; set-up {fig['command_setup_s']}, stepping {fig['command_step_s']}.)",
            "",
        ]
    lines += [
        "| part of the floor | per call | calls a day | seconds a day |",
        "|---|---:|---:|---:|",
        f"| power flows, power-grid-model (ground truth + the DSO's AC checks) | "
        f"{c['pgm_flow']:.2f} ms | {calls['pgm_flow']} | "
        f"{fig['floor_s']['power flows (power-grid-model)']:.2f} |",
        f"| stage 1 QP, HiGHS run time (the DSO's whole solve call: {c['stage1_cvxpy']:.1f} ms) | "
        f"{c['stage1_highs']:.1f} ms | {calls['stage1']} | "
        f"{fig['floor_s']['stage 1 QPs (HiGHS run time)']:.2f} |",
        f"| stage 2 QP, HiGHS run time (the DSO's whole solve call: {c['stage2_cvxpy']:.1f} ms) | "
        f"{c['stage2_highs']:.1f} ms | {calls['stage2']} | "
        f"{fig['floor_s']['stage 2 QPs (HiGHS run time)']:.2f} |",
        f"| fleet ranges + dispatch | {c['fleet_ranges']:.2f} + {c['fleet_dispatch']:.2f} ms "
        f"| {fig['slots']} | {fig['floor_s']['fleet ranges and dispatch']:.2f} |",
        f"| one slot's transactions on revm, fast path, a batch per phase "
        f"({calls['transactions'] // fig['slots']} a slot) | {c['chain_slot']:.1f} ms | "
        f"{fig['slots']} | {fig['floor_s']['chain batches (revm, fast path)']:.2f} |",
        f"| writing one slot of every table | {c['write_slot']:.1f} ms | {fig['slots']} | "
        f"{fig['floor_s']['writing the tables']:.2f} |",
        f"| **floor** | | | **{fig['floor_day_s']:.2f}** |",
        "",
        f"The other engine: a warm `runpp_3ph` of the same feeder takes {c['runpp_3ph_warm']:.1f} "
        f"ms a flow ({c['runpp_3ph_warm'] / c['pgm_flow']:.0f}x power-grid-model). "
        "The DSO's solve calls (parameters applied to the DPP program cvxpy compiled once, "
        "HiGHS on its arrays, the result unpacked by cvxpy) took "
        f"{fig['stage1_cvxpy_s']:.2f} s (stage 1) and {fig['stage2_cvxpy_s']:.2f} s (stage 2) "
        "a day. "
        "Not in the floor: imports, set-up, mosaik's scheduling, the chain's reads (bands, "
        "round states, sums, lambda), the masking, the rows' assembly, the summary and plots.",
        "<!-- floor:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    parser.add_argument("--rounds", type=int, default=5, help="timed chain slots")
    parser.add_argument("--samples", type=int, default=8, help="runpp_3ph and writing samples")
    parser.add_argument("--skip-command", action="store_true", help="the floor only")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    fig = measure(args)
    section = markdown(fig, args.scenario)
    print(section)
    if args.write:
        write_section(section, "floor")
    if args.json:
        print(json.dumps(fig, sort_keys=True))


if __name__ == "__main__":
    main()
