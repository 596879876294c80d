"""Gas per call and transactions per second: private contract vs the seed baseline.

Runs the protocol demo (both contracts side by side) on the embedded chain and, when Node.js
and hardhat are installed, on a local hardhat JSON-RPC node. Prints a table, rewrites the
gas section of BENCHMARKS.md (with --write) and, with --json, ends with one JSON line:
keys like "private.submitRange.gas_mean" and "embedded.private.tx_per_s".

    .venv/bin/python benchmarks/gas.py --write --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from markdown_section import write_section  # noqa: E402

from sim.chain.connection import connect  # noqa: E402
from sim.chain.demo import run_protocol_demo  # noqa: E402
from sim.chain.node import HardhatNode, node_unavailable_reason  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/gas.py --write --json"
GROUPS = (10, 10)
ROUNDS = 5


def measure(backend: str, url: str | None = None) -> pd.DataFrame:
    chain = connect(backend, url)
    result = run_protocol_demo(chain, rounds=ROUNDS, groups=GROUPS, dropout_round=3)
    if not result.exact:
        raise SystemExit(f"{backend}: unmasked sums differ from the true sums")
    tx = result.transactions
    return tx[~tx.label.str.endswith(".deploy")]


def figures(runs: dict[str, pd.DataFrame]) -> dict[str, float]:
    out: dict[str, float] = {}
    reference = runs.get("hardhat", runs["embedded"])  # gas from a standard node when we have one
    for label, gas in reference.groupby("label").gas_used:
        out[f"{label}.gas_mean"] = round(float(gas.mean()), 1)
        out[f"{label}.count"] = int(gas.size)
    for backend, tx in runs.items():
        for contract in ("private", "baseline"):
            part = tx[tx.label.str.startswith(contract + ".")]
            out[f"{backend}.{contract}.tx_per_s"] = round(len(part) / part.latency_s.sum(), 1)
    return out


def markdown(fig: dict[str, float], backends: list[str]) -> str:
    calls = sorted({k.rsplit(".", 2)[1] for k in fig if k.endswith(".gas_mean")})
    lines = [
        "<!-- gas:start -->",
        "## Contract gas and throughput",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {os.cpu_count()} cores; date {dt.date.today().isoformat()}; backends: "
        f"{', '.join(backends)}; gas figures from "
        f"{'the hardhat node' if 'hardhat' in backends else 'eth-tester (py-evm)'}.  ",
        f"Workload: {len(GROUPS)} groups x {GROUPS[0]} homes, {ROUNDS} rounds, one dropout "
        "with recovery; the seed contract runs the same rounds (one instance for all homes).",
        "",
        "| call | private: mean gas | seed baseline: mean gas |",
        "|---|---:|---:|",
    ]
    for call in calls:
        cells = [
            f"{fig[k]:,.0f}" if (k := f"{c}.{call}.gas_mean") in fig else "-"
            for c in ("private", "baseline")
        ]
        lines.append(f"| {call} | {cells[0]} | {cells[1]} |")
    lines += ["", "| backend | private tx/s | baseline tx/s |", "|---|---:|---:|"]
    for b in backends:
        lines.append(f"| {b} | {fig[f'{b}.private.tx_per_s']} | {fig[f'{b}.baseline.tx_per_s']} |")
    lines += [
        "",
        "tx/s is sequential (send, wait for the receipt, next), from the client's wall time "
        "including the dry-run call that catches refusals.",
        "<!-- gas:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    runs = {"embedded": measure("embedded")}
    reason = node_unavailable_reason()
    if reason:
        print(f"hardhat backend skipped: {reason}", file=sys.stderr)
    else:
        with HardhatNode() as node:
            runs["hardhat"] = measure("rpc", node.url)
    fig = figures(runs)
    section = markdown(fig, list(runs))
    print(section)
    if args.write:
        write_section(section, "gas")
    if args.json:
        print(json.dumps(fig, sort_keys=True))


if __name__ == "__main__":
    main()
