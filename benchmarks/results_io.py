"""Size and write cost of the results tables, Parquet against CSV, from a finished run.

    .venv/bin/python benchmarks/results_io.py results/default [--json]

Replays the run's rows through `ResultsWriter` slot by slot, as the recorder appends them
(one list of row dicts per table and slot, the slots table last), once per format, and
prints per format: the tables' bytes per simulated day, the mean and largest write time per
slot (ms), the consolidation at the end (Parquet) and the time `load_results` takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from sim.results.writer import TABLES, ResultsWriter, load_results, table_files  # noqa: E402
from sim.scenario import parse_scenario  # noqa: E402


def _bytes(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def replay(source: Path, fmt: str, out: Path) -> dict:
    scenario = parse_scenario(yaml.safe_load((source / "scenario.yaml").read_text()), "replay")
    tables = load_results(source)
    rounds = sorted(tables["slots"]["round"].tolist())
    by_round = {
        table: {r: g.to_dict("records") for r, g in frame.groupby("round", dropna=False)}
        for table, frame in tables.items()
        if len(frame)
    }
    order = sorted(by_round, key=lambda t: t == "slots")
    writer = ResultsWriter(out, scenario, fmt)
    per_slot = []
    for r in rounds:
        start = time.perf_counter()
        for table in order:
            rows = by_round[table].get(r)
            if rows:
                writer.append(table, rows)
        per_slot.append(time.perf_counter() - start)
    start = time.perf_counter()
    writer.close()
    close_s = time.perf_counter() - start
    start = time.perf_counter()
    load_results(out)
    load_s = time.perf_counter() - start
    days = len(rounds) * scenario.time.slot_s / 86400
    sizes = {t: _bytes([p for p in table_files(out) if p.name.split(".")[0] == t]) for t in TABLES}
    return {
        "format": fmt,
        "mb_per_day": round(sum(sizes.values()) / days / 1e6, 2),
        "mb_per_day_by_table": {t: round(b / days / 1e6, 3) for t, b in sizes.items()},
        "write_ms_per_slot_mean": round(1000 * float(np.mean(per_slot)), 2),
        "write_ms_per_slot_max": round(1000 * float(np.max(per_slot)), 2),
        "consolidate_s": round(close_s, 3),
        "load_results_s": round(load_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", help="a results folder of `blockhems run`")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = {"cores": os.cpu_count(), "formats": []}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            figures["formats"].append(replay(Path(args.results), fmt, Path(tmp) / fmt))
    for f in figures["formats"]:
        print(
            f"{f['format']:8s} {f['mb_per_day']:7.2f} MB/day   write "
            f"{f['write_ms_per_slot_mean']:.1f} ms/slot (max {f['write_ms_per_slot_max']:.1f})   "
            "consolidate "
            f"{f['consolidate_s']:.2f} s   load_results {f['load_results_s']:.2f} s"
        )
        print("         " + ", ".join(f"{t} {v}" for t, v in f["mb_per_day_by_table"].items()))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
