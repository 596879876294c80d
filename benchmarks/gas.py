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
from sim.chain.deployment import setup_market  # noqa: E402
from sim.chain.node import HardhatNode, node_unavailable_reason  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/gas.py --write --json"
GROUPS = (10, 10)
ROUNDS = 5
DROPOUT_ROUND = 3
LAMBDA_GROUPS = (2, 6, 9)  # groups of a round for the lambda calls (6: the default day)
# before issue 16 (BENCHMARKS.md of 2026-11-24): one submitRange per home and round, plus one
# submitCorrection per survivor of a group with a dropout
BEFORE = {"submitRange": 38_823, "submitCorrection": 49_477}


def measure(backend: str, url: str | None = None) -> pd.DataFrame:
    chain = connect(backend, url)
    result = run_protocol_demo(chain, rounds=ROUNDS, groups=GROUPS, dropout_round=DROPOUT_ROUND)
    if not result.exact:
        raise SystemExit(f"{backend}: unmasked sums differ from the true sums")
    tx = result.transactions
    return tx[~tx.label.str.endswith(".deploy")]


def lambda_gas(backend: str, url: str | None = None) -> dict[str, float]:
    """Gas of the DSO's lambda calls for rounds of 2, 6 and 9 groups (5 homes each): the
    single lambda (submitLambda) and one per group (submitLambdas, packed 8 per word)."""
    out: dict[str, float] = {}
    chain = connect(backend, url)
    for n in LAMBDA_GROUPS:
        market = setup_market(chain, [g for g in range(n) for _ in range(5)])
        for round_, per_group in ((1, False), (2, True)):
            market.dso.open_rounds(round_, {g: (0.08, 0.21) for g in range(n)}, chain.now() + 300)
            chain.transact_many([h.range_request(round_, 1_000, 2_000) for h in market.homes])
            chain.transact_many([h.recovery_request(round_) for h in market.homes])
            if per_group:
                market.dso.post_lambdas(round_, {g: 0.1 * (g % 10) for g in range(n)})
            else:
                market.dso.post_lambda(round_, 0.5)
            label = "submitLambdas" if per_group else "submitLambda"
            out[f"lambda.{label}.{n}_groups.gas"] = float(chain.records[-1].gas_used)
    return out


def per_home(tx: pd.DataFrame) -> dict[str, float]:
    """Gas and transactions per home and round: rounds without a dropout, and the survivors of
    the group with the dropout (the dropped home sends nothing)."""
    homes = tx[tx.label.isin(["private.submitRange", "private.recover"])]
    by_home = homes.groupby(["round", "sender"]).gas_used.agg(["sum", "size"])
    dropout_group_senders = set(
        homes[
            (homes["round"] == DROPOUT_ROUND) & (homes.label == "private.submitRange")
        ].sender.iloc[: GROUPS[0] - 1]
    )
    clean = by_home.drop(index=DROPOUT_ROUND, level="round")
    dropped = by_home.loc[DROPOUT_ROUND]
    dropped = dropped[dropped.index.isin(dropout_group_senders)]
    return {
        "per_home.no_dropout.gas": round(float(clean["sum"].mean()), 1),
        "per_home.no_dropout.tx": float(clean["size"].mean()),
        "per_home.dropout_survivor.gas": round(float(dropped["sum"].mean()), 1),
        "per_home.dropout_survivor.tx": float(dropped["size"].mean()),
    }


def figures(runs: dict[str, pd.DataFrame], lambdas: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = dict(lambdas)
    reference = runs.get("hardhat", runs["embedded"])  # gas from a standard node when we have one
    out.update(per_home(reference))
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
        f"(round {DROPOUT_ROUND}, group 0) with recovery; every survivor sends one `recover` "
        "per round (its self-mask); the seed contract runs the same rounds (one instance for "
        "all homes). Masked words are random, so calldata gas varies by a few gas per word.",
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
    survivor_before = BEFORE["submitRange"] + BEFORE["submitCorrection"]
    lines += [
        "",
        "Per home and round (homes' transactions only; the DSO's are per group or per round):",
        "",
        "| round | gas before (#16) | gas now | transactions before | transactions now |",
        "|---|---:|---:|---:|---:|",
        f"| no dropout | {BEFORE['submitRange']:,} | {fig['per_home.no_dropout.gas']:,.0f} | 1 | "
        f"{fig['per_home.no_dropout.tx']:g} |",
        f"| survivor in a group with a dropout | {survivor_before:,} | "
        f"{fig['per_home.dropout_survivor.gas']:,.0f} | 2 | "
        f"{fig['per_home.dropout_survivor.tx']:g} |",
        "| the dropped home | 0 | 0 | 0 | 0 |",
        "",
        "The DSO's lambda per round (groups of 5 homes): one value for every group "
        "(`submitLambda`, the seed paper's) and one per group (`submitLambdas`, 8 per word):",
        "",
        "| groups in the round | submitLambda gas | submitLambdas gas |",
        "|---:|---:|---:|",
    ]
    for n in LAMBDA_GROUPS:
        single = fig[f"lambda.submitLambda.{n}_groups.gas"]
        many = fig[f"lambda.submitLambdas.{n}_groups.gas"]
        lines.append(f"| {n} | {single:,.0f} | {many:,.0f} |")
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
    lambdas = lambda_gas("embedded")
    reason = node_unavailable_reason()
    if reason:
        print(f"hardhat backend skipped: {reason}", file=sys.stderr)
    else:
        with HardhatNode() as node:
            runs["hardhat"] = measure("rpc", node.url)
            lambdas = lambda_gas("rpc", node.url)
    fig = figures(runs, lambdas)
    section = markdown(fig, list(runs))
    print(section)
    if args.write:
        write_section(section, "gas")
    if args.json:
        print(json.dumps(fig, sort_keys=True))


if __name__ == "__main__":
    main()
