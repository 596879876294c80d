"""submitRange throughput per chain backend: the reference path against the fast path, in one run.

Two paths per backend (`Chain.fast`): `reference` is what every backend did before issue 14
(eth-account signing, raw transactions through web3, one receipt request per transaction);
`fast` signs with the native signer and, on the in-process revm backend, hands transactions to
the engine as fields and reads receipts straight from it. Both paths run on a fresh chain each
(a node each for the node backends) with the same homes, their timed rounds alternating, so
that a machine busy with other work slows both alike.

One group of homes per `--group-size` homes; each round opens the round (DSO, not timed), masks
every home's bounds (not timed: the same on every path), then sends the homes' submissions,
either one by one (`transact`: dry run, sign, send, wait for the receipt) or as one batch
(`transact_many`: sign all, send, one block where the backend lets the client mine, receipts).
A first round warms up (the gas-limit estimate of the call and the nonces). Every round's
unmasked sums are checked against the true sums, and the two paths' gas must be equal. The
batched rounds' time is split into signing, sending, mining and receipts per transaction
(`Chain.timings`). With --write the section between the chain markers of BENCHMARKS.md is
replaced (or appended); with --json the last line is one JSON object of the figures.

    .venv/bin/python benchmarks/chain.py --write --json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from markdown_section import write_section  # noqa: E402

from sim.chain.connection import Chain, connect  # noqa: E402
from sim.chain.deployment import Market, setup_market  # noqa: E402
from sim.chain.node import HardhatNode, RevmNode, node_unavailable_reason  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/chain.py --write --json"
DEADLINE_S = 3_600
MODES = ("sequential", "batched")
PATHS = ("reference", "fast")
STEPS = ("sign", "send", "mine", "receipts")


def run_round(market: Market, round_: int, mode: str, rng: random.Random) -> float:
    """One round's submissions; returns their wall time (s). Raises if a sum is wrong."""
    chain = market.chain
    deadline = chain.now() + DEADLINE_S
    for group in sorted(set(market.groups)):
        market.dso.open_round(round_, group, 0.08, 0.21, deadline)
    values = []
    for _ in market.homes:
        lower = rng.randrange(-3_000, 5_000)
        values.append((lower, lower + rng.randrange(0, 3_000)))
    requests = [h.range_request(round_, *v) for h, v in zip(market.homes, values, strict=True)]
    start = time.perf_counter()
    if mode == "sequential":
        for request in requests:
            chain.transact(request.label, request.account, request.fn, request.round)
    else:
        chain.transact_many(requests)
    elapsed = time.perf_counter() - start
    # untimed: every survivor's recovery word (self-mask removed), which completes the sums
    chain.transact_many([h.recovery_request(round_) for h in market.homes])
    for group in sorted(set(market.groups)):
        members = [i for i, g in enumerate(market.groups) if g == group]
        aggregate = market.dso.read_aggregate(round_, group)
        true = (sum(values[i][0] for i in members), sum(values[i][1] for i in members))
        if not aggregate.complete or (aggregate.lower_w, aggregate.upper_w) != true:
            raise SystemExit(f"round {round_} group {group}: unmasked sums differ from the truth")
    return elapsed


@dataclasses.dataclass
class _Path:
    market: Market
    rng: random.Random
    setup_s: float
    times: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    steps: dict[str, float] = dataclasses.field(default_factory=dict)
    round_: int = 2


def compare(
    open_chain: Callable[[], Chain], homes: int, group_size: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Both paths on chains from `open_chain`, their timed rounds alternating."""
    groups = [i // group_size for i in range(homes)]
    paths: dict[str, _Path] = {}
    for path in PATHS:
        chain = open_chain()
        chain.fast = path == "fast"
        start = time.perf_counter()
        market = setup_market(chain, groups, min_group_size=min(5, group_size))
        paths[path] = _Path(market, random.Random(1), time.perf_counter() - start)
        run_round(market, 1, "sequential", paths[path].rng)  # warm-up: gas limit, nonces
    for mode in MODES:
        for _ in range(rounds):
            for p in paths.values():
                chain = p.market.chain
                before = dataclasses.replace(chain.timings)
                cpu = time.process_time()
                p.times.setdefault(mode, []).append(run_round(p.market, p.round_, mode, p.rng))
                p.round_ += 1
                if mode == "batched":
                    # this process's CPU time: a round's masking and checks included, a node's
                    # own work not; robust to other work on the machine, unlike wall time
                    p.steps["cpu"] = p.steps.get("cpu", 0.0) + time.process_time() - cpu
                    for step in STEPS:
                        spent = getattr(chain.timings, f"{step}_s") - getattr(before, f"{step}_s")
                        p.steps[step] = p.steps.get(step, 0.0) + spent
    out: dict[str, dict[str, float]] = {}
    for path, p in paths.items():
        chain = p.market.chain
        f: dict[str, float] = {"setup_s": round(p.setup_s, 2)}
        for mode in MODES:
            f[f"{mode}_tx_per_s"] = round(homes * rounds / sum(p.times[mode]), 1)
            f[f"{mode}_round_s"] = round(statistics.median(p.times[mode]), 3)
        for step in (*STEPS, "cpu"):
            f[f"{step}_ms_per_tx"] = round(1e3 * p.steps[step] / (homes * rounds), 3)
        gas = [r.gas_used for r in chain.records if r.label == "private.submitRange"]
        f["submitRange_gas_mean"] = round(statistics.fmean(gas), 1)
        last = p.round_ - 1
        f["batched_blocks_per_round"] = len(
            {r.block for r in chain.records if r.label == "private.submitRange" and r.round == last}
        )
        out[path] = f
    if out["fast"]["submitRange_gas_mean"] != out["reference"]["submitRange_gas_mean"]:
        raise SystemExit(f"the paths' gas differs: {out}")
    return out


def markdown(fig: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "<!-- chain:start -->",
        "## Chain backends: submitRange throughput, reference vs fast path (issues 6 and 14)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {os.cpu_count()} cores; date {dt.date.today().isoformat()}; load average at "
        f"the end {load} (other work ran beside it, slowing both paths alike).  ",
        f"Workload: {args.homes} homes in groups of {args.group_size}, {args.rounds} timed rounds "
        "per mode and path after one warm-up round, the two paths' rounds alternating; the time "
        "counts signing, sending and the receipts (sequential also the dry run), not the "
        "masking, which is the same on every backend, nor the batch of recovery words that "
        "completes each round's sums.",
        "",
        "| backend | path | batched tx/s | sequential tx/s | sign | send | mine | receipts "
        "(ms/tx, batched) | client CPU ms/round-tx | blocks per batch | submitRange mean gas | "
        "setup (deploy, fund, register) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, paths in fig.items():
        for path, f in paths.items():
            steps = " | ".join(f"{f[f'{s}_ms_per_tx']:.3f}" for s in STEPS)
            lines.append(
                f"| {backend} | {path} | {f['batched_tx_per_s']} | {f['sequential_tx_per_s']} | "
                f"{steps} | {f['cpu_ms_per_tx']:.3f} | {f['batched_blocks_per_round']} | "
                f"{f['submitRange_gas_mean']:,.1f} | {f['setup_s']} s |"
            )
    speedups = [
        f"{backend} {p['fast']['batched_tx_per_s'] / p['reference']['batched_tx_per_s']:.1f}x"
        for backend, p in fig.items()
    ]
    lines += [
        "",
        f"Batched throughput, fast over reference: {', '.join(speedups)}.",
        "",
        "Reference: eth-account signing, raw transactions through web3, one receipt request per "
        "transaction (JSON-RPC batches to the HTTP nodes). Fast: the native signer (the same "
        "raw bytes, tests/test_chain_signing.py) and, on `revm` in process, transactions handed "
        "to the engine as fields (the same checks and sender recovery) and receipts read from "
        "it. Sequential: `Chain.transact` (dry run, sign, send, wait for the receipt). Batched: "
        "`Chain.transact_many` (sign all, send, mine, then the receipts; no dry run). The step "
        "times are `Chain.timings` over the batched rounds (wall time); what is left of a "
        "batch's time is recording and the loop around them. Client CPU: this process's CPU "
        "time per transaction over the whole batched round (the round's opening, masking and "
        "sum checks included, a node's own work not), the figure least moved by other work on "
        "the machine.",
        "<!-- chain:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--homes", type=int, default=55, help="homes (one submission each)")
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mode and path")
    parser.add_argument(
        "--backends",
        default="embedded,revm,revm-node,hardhat",
        help="comma list of embedded,revm,revm-node (revm over JSON-RPC),hardhat",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    fig: dict[str, dict[str, dict[str, float]]] = {}
    for backend in args.backends.split(","):
        with ExitStack() as stack:
            # a fresh chain per path: the same accounts, calldata and gas on both
            if backend == "hardhat":
                reason = node_unavailable_reason()
                if reason:
                    print(f"hardhat backend skipped: {reason}", file=sys.stderr)
                    continue

                def open_chain(stack: ExitStack = stack) -> Chain:
                    return connect("rpc", stack.enter_context(HardhatNode()).url)

            elif backend == "revm-node":  # the revm chain served by `python -m sim.chain.revm.node`

                def open_chain(stack: ExitStack = stack) -> Chain:
                    return connect("rpc", stack.enter_context(RevmNode()).url, shared=True)

            else:

                def open_chain(backend: str = backend) -> Chain:
                    return connect(backend)  # type: ignore[arg-type]

            fig[backend] = compare(open_chain, args.homes, args.group_size, args.rounds)
        print(f"{backend}: {fig[backend]}", file=sys.stderr)
    section = markdown(fig, args)
    print(section)
    if args.write:
        write_section(section, "chain")
    if args.json:
        flat = {
            f"{b}.{p}.{k}": v for b, paths in fig.items() for p, f in paths.items()
            for k, v in f.items()
        }  # fmt: skip
        flat.update(homes=args.homes, group_size=args.group_size, rounds=args.rounds)
        print(json.dumps(flat, sort_keys=True))


if __name__ == "__main__":
    main()
