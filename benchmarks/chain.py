"""submitRange throughput per chain backend, sequential (`transact`) vs batched (`transact_many`).

One group of homes per `--group-size` homes; each timed round opens the round (DSO, not timed),
masks every home's bounds (not timed: the same on every backend), then sends the homes'
submissions, either one by one (dry run, send, wait for the receipt) or as one batch (send all,
one block where the backend lets the client mine, then the receipts). A first round warms up
(the gas-limit estimate of the call and the nonces). Every round's unmasked sums are checked
against the true sums. With --write the section between the chain markers of BENCHMARKS.md is
replaced (or appended); with --json the last line is one JSON object of the figures.

    .venv/bin/python benchmarks/chain.py --write --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from markdown_section import write_section  # noqa: E402

from sim.chain.connection import Chain, connect  # noqa: E402
from sim.chain.market import Market, setup_market  # noqa: E402
from sim.chain.node import HardhatNode, RevmNode, node_unavailable_reason  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/chain.py --write --json"
DEADLINE_S = 3_600
MODES = ("sequential", "batched")


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
    for group in sorted(set(market.groups)):
        members = [i for i, g in enumerate(market.groups) if g == group]
        agg = market.dso.read_aggregate(round_, group)
        true = (sum(values[i][0] for i in members), sum(values[i][1] for i in members))
        if not agg.complete or (agg.lower_w, agg.upper_w) != true:
            raise SystemExit(f"round {round_} group {group}: unmasked sums differ from the truth")
    return elapsed


def measure(chain: Chain, homes: int, group_size: int, rounds: int) -> dict[str, float]:
    groups = [i // group_size for i in range(homes)]
    start = time.perf_counter()
    market = setup_market(chain, groups, seed="bench-chain", min_group_size=min(5, group_size))
    setup_s = time.perf_counter() - start
    rng = random.Random(1)
    run_round(market, 1, "sequential", rng)  # warm-up: gas-limit estimate, nonce caches
    out: dict[str, float] = {"setup_s": round(setup_s, 2)}
    round_ = 2
    for mode in MODES:
        times = []
        for _ in range(rounds):
            times.append(run_round(market, round_, mode, rng))
            round_ += 1
        out[f"{mode}_tx_per_s"] = round(homes * rounds / sum(times), 1)
        out[f"{mode}_round_s"] = round(statistics.median(times), 3)
    gas = [r.gas_used for r in chain.records if r.label == "private.submitRange"]
    out["submitRange_gas_mean"] = round(statistics.fmean(gas), 1)
    blocks = {r.block for r in chain.records[-homes:]}
    out["batched_blocks_per_round"] = len(blocks)
    return out


def markdown(fig: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        "<!-- chain:start -->",
        "## Chain backends: submitRange throughput, sequential vs batched (issue 6)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {os.cpu_count()} cores; date {dt.date.today().isoformat()}.  ",
        f"Workload: {args.homes} homes in groups of {args.group_size}, {args.rounds} timed rounds "
        "per mode after one warm-up round; the time counts signing, sending and the receipts "
        "(sequential also the dry run), not the masking, which is the same on every backend.",
        "",
        "| backend | sequential tx/s | batched tx/s | batched blocks per round | "
        "submitRange mean gas | setup (deploy, fund, register) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend, f in fig.items():
        lines.append(
            f"| {backend} | {f['sequential_tx_per_s']} | {f['batched_tx_per_s']} | "
            f"{f['batched_blocks_per_round']} | {f['submitRange_gas_mean']:,.1f} | "
            f"{f['setup_s']} s |"
        )
    lines += [
        "",
        "Sequential: `Chain.transact` (dry run, sign, send, wait for the receipt). Batched: "
        "`Chain.transact_many` (sign and send all, mine, then the receipts; no dry run).",
        "<!-- chain:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--homes", type=int, default=55, help="homes (one submission each)")
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mode")
    parser.add_argument(
        "--backends",
        default="embedded,revm,revm-node,hardhat",
        help="comma list of embedded,revm,revm-node (revm over JSON-RPC),hardhat",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    fig: dict[str, dict[str, float]] = {}
    for backend in args.backends.split(","):
        if backend == "hardhat":
            reason = node_unavailable_reason()
            if reason:
                print(f"hardhat backend skipped: {reason}", file=sys.stderr)
                continue
            with HardhatNode() as node:
                fig[backend] = measure(
                    connect("rpc", node.url), args.homes, args.group_size, args.rounds
                )
        elif backend == "revm-node":  # the revm chain served by `python -m sim.chain.revm.node`
            with RevmNode() as node:
                fig[backend] = measure(
                    connect("rpc", node.url, shared=True), args.homes, args.group_size, args.rounds
                )
        else:
            fig[backend] = measure(connect(backend), args.homes, args.group_size, args.rounds)
        print(f"{backend}: {fig[backend]}", file=sys.stderr)
    section = markdown(fig, args)
    print(section)
    if args.write:
        write_section(section, "chain")
    if args.json:
        flat = {f"{b}.{k}": v for b, f in fig.items() for k, v in f.items()}
        flat.update(homes=args.homes, group_size=args.group_size, rounds=args.rounds)
        print(json.dumps(flat, sort_keys=True))


if __name__ == "__main__":
    main()
