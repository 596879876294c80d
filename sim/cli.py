"""The `blockhems` command line: run, plot and validate scenarios; the on-chain demo; the
privacy measurement (occupancy-inference attack on both contracts); the full-information
oracle and its comparison with a market run.

Length: one short handler per subcommand and the argument parser; the handlers import their
work lazily, so the file grows with the commands, not with logic."""

from __future__ import annotations

# Only the lightest imports here (argparse, json, logging and the rest load inside main()):
# a Ctrl-C in the first moments must already reach main()'s handler, not print a traceback.
import signal
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any


def _early_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C before main() runs (the console script still importing): quietly exit 130."""
    sys.stderr.write("blockhems: interrupted\n")
    sys.exit(130)


# As the `blockhems` program: from here on a Ctrl-C is one line (main() takes over); imported
# as a module (tests), SIGINT stays as it was.
_AS_PROGRAM = sys.argv and sys.argv[0].rsplit("/", 1)[-1] == "blockhems"
if _AS_PROGRAM:
    signal.signal(signal.SIGINT, _early_interrupt)

from sim.errors import BlockhemsError  # noqa: E402

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from pathlib import Path

    from sim.scenario import Scenario


_terminated: list[int] = []  # the signal that ended the run, when it was SIGTERM
_resumable: list[Path] = []  # the results folder of the run in progress
_stop_timers: list[int] = []  # the interval timer of a stop in progress


STOP_GRACE_S = 20.0  # after Ctrl-C or SIGTERM, how long the run may take to stop cleanly


def _resume_hint() -> str:
    """How to continue the run in progress, when its folder holds a checkpoint."""
    if not _resumable:
        return ""
    from sim.market.checkpoint import Checkpoints

    if not Checkpoints(_resumable[0]).rounds("dso"):
        return ""
    return f"; continue with `blockhems run --resume {_resumable[0]}`"


def _leave(signum: int, frame: object) -> None:
    """The stop's grace is over: leave at once with the same line and exit code."""
    import os

    how = "terminated (SIGTERM)" if _terminated else "interrupted"
    sys.stderr.write(
        f"blockhems: {how}; the clean-up did not end within {STOP_GRACE_S:g} s; "
        f"finished slots are kept in the results folder{_resume_hint()}\n"
    )
    sys.stderr.flush()
    os._exit(143 if _terminated else 130)


def _stop_or_exit() -> None:
    """Start the clock on a stop: if the run's clean-up (mosaik's shutdown of its simulator
    processes) has not ended within STOP_GRACE_S, leave anyway with the same line and code.
    The finished slots are in the results folder already (each slot's tables are written when
    it ends; `load_results` reads an unconsolidated folder). A real-time timer signal, not a
    thread: nothing to start from inside a signal handler."""
    signal.signal(signal.SIGALRM, _leave)
    signal.setitimer(signal.ITIMER_REAL, STOP_GRACE_S)
    _stop_timers.append(signal.ITIMER_REAL)  # cancelled when main() returns


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C: a KeyboardInterrupt as usual, with a bound on the clean-up that follows."""
    _stop_or_exit()
    raise KeyboardInterrupt


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C (its finally blocks stop the child processes)."""
    _terminated.append(signum)
    _stop_or_exit()
    raise KeyboardInterrupt


@contextmanager
def _mosaik_failures(aborted: list[str]) -> Iterator[None]:
    """Collect, as one line each, the failures of simulator processes that mosaik logs (with
    the process's traceback) instead of raising; `sim.console.configure_logging` keeps the
    traceback off the console."""
    import re

    from loguru import logger

    from sim.console import is_simulator_failure

    pattern = re.compile(r"Simulator (\S+) aborted the simulation with error (\w+)\((.*?)\)\.")

    def collect(message: Any) -> None:
        found = pattern.match(" ".join(message.record["message"].split("\n", 1)[0].split()))
        aborted.append(
            f"{found[1]}: {found[3]}" if found else message.record["message"].split("\n")[0]
        )

    caught = logger.add(collect, level="ERROR", filter=is_simulator_failure)
    try:
        yield
    finally:
        logger.remove(caught)


def _resumed_scenario(args: argparse.Namespace) -> Path:
    """The scenario of the run `--resume` continues: the one its folder holds. The folder
    fixes the scenario, the output and the format; the chain may change (the results do not
    depend on it)."""
    from pathlib import Path

    from sim.market.checkpoint import ResumeError

    for given, what in (
        (args.scenario, "a scenario"),
        (args.output, "-o"),
        (args.format, "--format"),
    ):
        if given is not None:
            raise ResumeError(
                f"--resume {args.resume} continues the run in that folder with its own scenario, "
                f"output and format: drop {what}",
                key="resume",
            )
    folder = Path(args.resume)
    if not (folder / "scenario.yaml").is_file():
        raise ResumeError(
            f"--resume {folder}: not a results folder of `blockhems run` (no scenario.yaml)",
            key="resume",
        )
    return folder / "scenario.yaml"


def _run(args: argparse.Namespace) -> int:
    from sim.console import LOG_LEVELS, configure_logging
    from sim.scenario import DEFAULT_SCENARIO, load_scenario, override

    verbosity = "quiet" if args.quiet else "verbose" if args.verbose else "default"
    configure_logging(LOG_LEVELS[verbosity])
    scenario_file = args.scenario or str(DEFAULT_SCENARIO)
    scenario = load_scenario(_resumed_scenario(args) if args.resume else scenario_file)
    changes = {
        key: value
        for key, value in (
            ("chain.backend", args.backend),
            ("chain.url", args.url),
            ("homes.shards", args.shards),
            ("outputs.format", args.format),
        )
        if value is not None
    }
    if changes:
        shown = ", ".join(f"{k}={v}" for k, v in changes.items())
        scenario = override(scenario, changes, f"command-line options ({shown})")
    # the file's own mistakes come first, before the imports below (seconds: pandapower, web3)
    from sim.market.plan import plan_run
    from sim.results.folder import prepare_output_dir, release_output_dir

    plan_run(scenario)  # the checks of validate, before the heavy set-up
    out_dir = prepare_output_dir(
        args.resume or args.output or f"results/{scenario.name}", resume=bool(args.resume)
    )
    try:
        return _run_in(args, scenario, out_dir)
    finally:
        release_output_dir(out_dir)


def _run_in(args: argparse.Namespace, scenario: Scenario, out_dir: Path) -> int:
    """The run itself, in its prepared (and held) results folder."""
    import json

    from sim.console import SlotBar

    if scenario.chain.backend == "hardhat":
        from sim.chain.node import node_unavailable_reason

        reason = node_unavailable_reason()
        if reason:
            raise BlockhemsError(f"chain.backend hardhat: {reason}", key="chain.backend")
    how = "scenario"
    if args.resume:  # which slot it continues from, before the heavy set-up
        from sim.market.checkpoint import Checkpoints
        from sim.results.writer import finished_slots

        first = Checkpoints(out_dir).resume_round(finished_slots(out_dir), scenario.time.n_slots)
        how = f"resuming at slot {first + 1} scenario"
    if not args.quiet:
        t = scenario.time
        print(
            f"blockhems: {how} {scenario.name} ({t.n_slots} slots of {t.slot_s // 60} min) "
            f"-> {out_dir} ({scenario.outputs.format})",
            flush=True,
        )
    if scenario.chain.debug_deterministic_keys:
        print(
            "blockhems: WARNING chain.debug_deterministic_keys: true: every key is derived from "
            "the scenario name and homes.seed; this run's submissions are not private",
            file=sys.stderr,
        )
    from sim.cosim.world import run_scenario
    from sim.results.plots import plot_results
    from sim.results.writer import finished_slots, summarize

    def kept() -> int:
        try:
            return len(finished_slots(out_dir))
        except Exception:  # no table yet
            return 0

    def kept_line() -> str:
        return f"{kept()} finished slots kept in {out_dir}{_resume_hint()}"

    _resumable[:] = [out_dir]

    bars: list[SlotBar] = []

    def progress(used: Scenario, first_round: int) -> SlotBar:
        dso, v_band = used.dso, (used.dso.v_min_pu, used.dso.v_max_pu)
        bars.append(SlotBar(used.time.n_slots, v_band, dso.ampacity_factor, first=first_round))
        return bars[0]

    aborted: list[str] = []  # what a simulator process failed with (mosaik only logs it)
    with _mosaik_failures(aborted):
        try:
            outcome = run_scenario(
                scenario,
                out_dir,
                progress=None if args.quiet else progress,
                log_level="info" if args.verbose else "warning",
                resume=bool(args.resume),
            )
        except BlockhemsError as exc:  # the run stopped midway: say what it kept
            if not getattr(exc, "slot_named", False):  # not in a slot: in the set-up
                raise
            first = exc.args[0] if exc.args else exc
            exc.args = (f"{first}; {kept_line()}",)
            raise
        except Exception as exc:  # mosaik's own (a simulator process closed its connection)
            if type(exc).__module__.split(".")[0] != "mosaik":
                raise
            text = " ".join(str(exc.args[0] if exc.args else exc).split())
            raise BlockhemsError(f"{aborted[0] if aborted else text}; {kept_line()}") from None
        finally:
            for bar in bars:
                bar.close()
    if _stop_timers:
        # Ctrl-C or SIGTERM landed inside mosaik's scheduler, which catches the
        # KeyboardInterrupt, logs "Simulation canceled" and returns as if the run had ended
        raise KeyboardInterrupt
    done = kept()
    if done < scenario.time.n_slots:  # mosaik ends the run quietly when a process failed
        why = aborted[0] if aborted else "a simulator stopped"
        raise BlockhemsError(
            f"{why}; the run stopped after {done} of {scenario.time.n_slots} slots, kept in "
            f"{out_dir}{_resume_hint()}"
        )
    used = outcome.parts.scenario
    summary = summarize(
        out_dir,
        (used.dso.v_min_pu, used.dso.v_max_pu),
        used.time.slot_s / 3600,
        used.dso.ampacity_factor,
    )
    summary["wall_s"] = round(outcome.wall_s, 2)
    summary["setup_s"] = {k: round(v, 2) for k, v in outcome.setup_s.items()}
    summary["step_s"] = {k: round(v, 2) for k, v in outcome.step_s.items()}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    files = plot_results(out_dir) if scenario.outputs.plots else []
    _print_summary(summary, out_dir, files, detail=args.verbose)
    return 0


def _print_summary(s: dict, out_dir: Path, plots: list[Path], detail: bool = False) -> None:
    """The end summary of a run (the only output of `blockhems run -q`)."""
    print(f"limits: {s['verdict']}")
    print(f"slots: {s['slots']}   lambda: {s['lambda_min']:.3f} .. {s['lambda_max']:.3f}")
    for ph in "abc":
        print(f"phase {ph}: voltage {s[f'v_min_{ph}_pu']:.4f} .. {s[f'v_max_{ph}_pu']:.4f} pu")
    print(
        f"voltage band: {s['voltage_violations']} slot-phases out (worst "
        f"{s['worst_undervoltage_pu']:.4f} pu below, {s['worst_overvoltage_pu']:.4f} pu above)"
        f"   lines: {s['slots_with_line_overload']} slots above rating (max "
        f"{s['max_line_loading_pct']:.1f} %)   transformer: {s['slots_with_trafo_overload']} "
        f"slots above rating (max {s['max_trafo_loading_pct']:.1f} %)"
    )
    print(
        f"energy not served: {s['energy_not_served_kwh']:.1f} kWh   PV curtailed: "
        f"{s['pv_curtailed_kwh']:.1f} kWh   comfort violations (home-slots): "
        f"{s['comfort_violations']}   held below the low-price demand: "
        f"{s['energy_shifted_kwh']:.1f} kWh"
    )
    print(
        f"slot-to-slot change per group: band {s['band_low_step_mean_usd_per_kwh']:.3f} / "
        f"{s['band_high_step_mean_usd_per_kwh']:.3f} $/kWh (low / high), lambda "
        f"{s['lambda_step_mean']:.3f}; group-rounds at the price cap: "
        f"{s['group_rounds_at_price_cap']}"
    )
    print(f"gas per slot: {s['gas_per_slot_mean']:,.0f}   transactions: {s['transactions']}")
    if s.get("implausible_group_rounds"):
        print(
            f"implausible group sums refused (group-rounds planned on the forecast): "
            f"{s['implausible_group_rounds']}"
        )
    print(f"keys: {s['keys']}")
    setup, stepping = sum(s["setup_s"].values()), sum(s["step_s"].values())
    print(f"wall time: {s['wall_s']:.1f} s (setup {setup:.1f} s, stepping {stepping:.1f} s)")
    if detail:
        print(f"  setup {s['setup_s']}\n  stepping {s['step_s']}")
    shown = f", {len(plots)} plots" if plots else ""
    print(f"results: {out_dir} (tables, summary.json{shown})")


def _oracle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sim.oracle import run_oracle
    from sim.oracle.report import compare, write_oracle
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    out_dir = Path(args.out or f"results/oracle-{scenario.name}")
    print(
        f"blockhems: full-information oracle of scenario {scenario.name} "
        f"({scenario.time.n_slots} slots) -> {out_dir}"
    )
    run = run_oracle(scenario, max_passes=args.passes, progress=None if args.quiet else print)
    s = write_oracle(run, out_dir)
    print(
        f"oracle: {s['slots_oracle_kept_limits']} of {s['slots']} slots keep every limit in the "
        f"AC flow; energy cost {s['energy_cost_usd']:.2f} $ (HEMS homes "
        f"{s['energy_cost_hems_usd']:.2f} $), comfort violations {s['comfort_violations']}, PV "
        f"curtailed {s['pv_curtailed_kwh']:.1f} kWh, peak import {s['peak_import_kw']:.1f} kW"
    )
    print(f"limits: {s['verdict']}")
    print(f"wall time: {s['wall_s']['total']:.1f} s ({s['wall_s']})")
    if args.against:
        compare(args.against, out_dir, out_dir)
        print((out_dir / "compare.md").read_text(), end="")
        print(f"wrote {out_dir / 'compare.md'}, compare.json, compare_slots.csv")
    return 0


def _leakage(args: argparse.Namespace) -> int:
    from sim.privacy.leakage import public_output_leakage, write_leakage

    report = public_output_leakage(args.results)
    path = write_leakage(report, args.results)
    print(
        f"{report.groups} groups x {report.rounds} rounds: R^2 of a group's dispatched total "
        f"from the clock and price {report.r2_clock_price:.3f} (out of sample "
        f"{report.r2_clock_price_out_of_sample:.3f}); with the round's bands and lambda "
        f"{report.r2_own_round:.3f} ({report.r2_own_round_out_of_sample:.3f}); with the next "
        f"round's bands too {report.r2_public_outputs:.3f} "
        f"({report.r2_public_outputs_out_of_sample:.3f})"
    )
    print(f"wrote {path}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from sim.results.plots import plot_results

    for f in plot_results(args.results):
        print(f)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    from sim.market.plan import plan_run  # after the file's own checks: it loads pandapower

    plan = plan_run(scenario)  # what run checks before its heavy set-up
    feeder = plan.feeder
    print(
        f"scenario {scenario.name}: valid; feeder {feeder.name} with {feeder.n_homes} homes in "
        f"{len(feeder.zones)} zones, {len(plan.groups)} aggregation groups; "
        f"{scenario.time.n_slots} slots of {scenario.time.slot_s} s"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from sim.chain.connection import connect
    from sim.chain.demo import run_protocol_demo, write_demo

    start = time.perf_counter()
    chain = connect(args.backend, args.rpc_url)
    result = run_protocol_demo(chain)
    files = write_demo(result, Path(args.output))
    gas = result.transactions.groupby("label").gas_used.mean()
    print(result.aggregates.to_string(index=False))
    print(
        f"submitRange gas: private {gas['private.submitRange']:.0f}, "
        f"seed baseline {gas['baseline.submitRange']:.0f}"
    )
    print(f"DSO's unmasked sums equal the true sums: {result.exact}")
    print(f"wrote {', '.join(str(f) for f in files)} in {time.perf_counter() - start:.1f} s")
    return 0 if result.exact else 1


def _privacy(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from sim.privacy.experiment import run_privacy, write_report
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    out_dir = Path(args.output or f"results/privacy-{scenario.name}")
    print(
        f"blockhems: privacy of scenario {scenario.name} over {args.days} days, both contracts "
        f"-> {out_dir}"
    )
    start = time.perf_counter()

    def progress(slot: int, n_slots: int) -> None:
        if not args.quiet and (slot + 1) % max(1, n_slots // 20) == 0:
            print(f"  slot {slot + 1}/{n_slots} ({time.perf_counter() - start:.0f} s)", flush=True)

    report = run_privacy(
        scenario,
        args.days,
        args.train_days,
        args.lambda_,
        progress=progress,
        dropout_probability=args.dropout,
    )
    files = write_report(report, out_dir)
    print(f"{'attacker':78s} {'bal. acc. [95 % CI]':>22s} {'AUC [95 % CI]':>22s}")
    for r in report.results:
        s = r.scores
        ba, auc = s.balanced_accuracy_ci, s.auc_ci
        print(
            f"{r.label:78s} {s.balanced_accuracy:.3f} [{ba[0]:.3f}, {ba[1]:.3f}] "
            f"  {s.auc:.3f} [{auc[0]:.3f}, {auc[1]:.3f}]"
        )
    prior, dso = report.result("prior", "", True), report.result("dso", "private", True)
    for group, size in report.group_sizes.items():
        if group in prior.by_group and group in dso.by_group:
            print(
                f"group {group} ({size} homes): AUC hour of day only "
                f"{prior.by_group[group]['auc']:.3f}, DSO's sums + hour "
                f"{dso.by_group[group]['auc']:.3f}"
            )
    print(f"verdict: {report.verdict()}")
    failed = [name for name, ok in report.checks.items() if not ok]
    print(f"consistency checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    print(f"wrote {', '.join(str(f) for f in files)} in {time.perf_counter() - start:.0f} s")
    return 0 if not failed else 1


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from sim.privacy import DEFAULT_DAYS, DEFAULT_DROPOUT, DEFAULT_LAMBDA
    from sim.scenario import DEFAULT_SCENARIO, SCENARIOS_DIR

    parser = argparse.ArgumentParser(prog="blockhems", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario (default: scenarios/default.yaml)")
    run.add_argument(
        "scenario", nargs="?", default=None, help=f"scenario file (default {DEFAULT_SCENARIO})"
    )
    run.add_argument("-o", "--output", default=None, help="results folder (results/<name>)")
    run.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the interrupted run in results folder DIR from its last checkpoint",
    )
    loudness = run.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="mosaik's INFO log and timings in detail"
    )
    run.add_argument(
        "--format",
        choices=["parquet", "csv"],
        default=None,
        help="override outputs.format: results tables as Parquet (default) or CSV",
    )
    run.add_argument(
        "--backend",
        choices=["embedded", "revm", "hardhat", "rpc"],
        default=None,
        help="override chain.backend (hardhat: start a local hardhat node for the run)",
    )
    run.add_argument("--url", default=None, help="override chain.url (JSON-RPC node, for rpc)")
    run.add_argument(
        "--shards",
        type=int,
        default=None,
        help="override homes.shards: HEMS fleet processes (needs revm, hardhat or rpc)",
    )
    run.set_defaults(func=_run)
    plot = sub.add_parser("plot", help="(re)draw the plots of a results folder")
    plot.add_argument("results")
    plot.set_defaults(func=_plot)
    validate = sub.add_parser("validate", help="check a scenario file")
    validate.add_argument("scenario")
    validate.set_defaults(func=_validate)
    demo = sub.add_parser("demo", help="on-chain protocol demo: private vs seed contract")
    demo.add_argument("-o", "--output", default="results/demo")
    demo.add_argument("--backend", choices=["embedded", "revm", "rpc"], default="embedded")
    demo.add_argument("--rpc-url", default=None, help="JSON-RPC url for --backend rpc")
    demo.set_defaults(func=_demo)
    privacy = sub.add_parser(
        "privacy",
        help="occupancy-inference attack on the seed and the private contract (same homes, days)",
    )
    privacy.add_argument(
        "scenario",
        nargs="?",
        default=str(SCENARIOS_DIR / "quick.yaml"),
        help="scenario YAML (scenarios/quick.yaml); its whole days from midnight are run",
    )
    privacy.add_argument("-o", "--output", default=None, help="folder (results/privacy-<name>)")
    privacy.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"whole days to run (>= 2; {DEFAULT_DAYS})"
    )
    privacy.add_argument(
        "--train-days", type=int, default=None, help="days the attacker trains on (days // 2)"
    )
    privacy.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="LAMBDA",
        type=float,
        default=DEFAULT_LAMBDA,
        help=f"dispatch factor posted every round ({DEFAULT_LAMBDA})",
    )
    privacy.add_argument(
        "--dropout",
        type=float,
        default=DEFAULT_DROPOUT,
        help=f"chance a home misses a round, on both contracts ({DEFAULT_DROPOUT})",
    )
    privacy.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    privacy.set_defaults(func=_privacy)
    oracle = sub.add_parser(
        "oracle",
        help="full-information benchmark: a central optimizer dispatches the same homes",
    )
    oracle.add_argument("scenario", help="scenario YAML")
    oracle.add_argument("--out", default=None, help="results folder (results/oracle-<name>)")
    oracle.add_argument(
        "--against", default=None, help="a market run's results folder to compare with"
    )
    oracle.add_argument(
        "--passes", type=int, default=6, help="AC re-linearization passes at most (6)"
    )
    oracle.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    oracle.set_defaults(func=_oracle)
    leakage = sub.add_parser(
        "leakage",
        help="what the public bands and lambda of a run tell about a group's dispatched total",
    )
    leakage.add_argument("results", help="results folder of `blockhems run`")
    leakage.set_defaults(func=_leakage)
    return parser


def _quiet_pending_tasks() -> None:
    """No "Task was destroyed but it is pending!" lines from mosaik's tasks at exit."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    previous_int = None
    if signal.getsignal(signal.SIGINT) in (_early_interrupt, signal.default_int_handler):
        try:
            previous_int = signal.signal(signal.SIGINT, _interrupt)
        except ValueError:  # not the main thread
            previous_int = None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        previous = None
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        sys.stdout.flush()  # here, where a reader gone away is caught, not at exit
        return code
    except KeyboardInterrupt:
        _quiet_pending_tasks()
        how = "terminated (SIGTERM)" if _terminated else "interrupted"
        print(
            f"blockhems: {how}; finished slots are kept in the results folder{_resume_hint()}",
            file=sys.stderr,
        )
        return 143 if _terminated else 130
    except BlockhemsError as exc:  # a user's mistake or a failed step: one line, no traceback
        _quiet_pending_tasks()
        print(f"blockhems: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of the output went away (`blockhems run | head`)
        import os

        # nothing more to say to it: no traceback, and none when Python flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        _resumable.clear()
        if _stop_timers:  # the clean-up did end: no forced exit
            signal.setitimer(signal.ITIMER_REAL, 0)
            _stop_timers.clear()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(
                signal.SIGINT,
                signal.default_int_handler if previous_int is _early_interrupt else previous_int,
            )


if __name__ == "__main__":
    sys.exit(main())
