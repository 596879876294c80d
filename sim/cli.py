"""The `blockhems` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    if args.scenario is not None:
        print(
            "blockhems: scenario files are not supported yet (the co-simulation issue adds "
            f"them); got {args.scenario}. Run `blockhems run` for the on-chain demo.",
            file=sys.stderr,
        )
        return 2
    from sim.chain.connection import connect
    from sim.chain.demo import run_protocol_demo, write_demo

    start = time.perf_counter()
    print("blockhems: on-chain protocol demo (private aggregation vs the seed contract)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blockhems", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario (for now: the on-chain protocol demo)")
    run.add_argument("scenario", nargs="?", default=None)
    run.add_argument("-o", "--output", default="results/demo", help="results folder")
    run.add_argument("--backend", choices=["embedded", "rpc"], default="embedded")
    run.add_argument("--rpc-url", default=None, help="JSON-RPC url for --backend rpc")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("blockhems: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a user-facing error: one clear line, not a traceback
        from sim.chain.connection import ChainError

        if isinstance(exc, ChainError):
            print(f"blockhems: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
