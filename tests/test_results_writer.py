"""The results writer's formats and its crash safety, on hand-made rows of every table: a
Parquet run's parts (unconsolidated, as a crash leaves them) read back like the consolidated
table and like CSV, chunks merge without loss or duplicates, and a half-written part is
never read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim.results.writer as writer_module
from sim.results.writer import TABLES, ResultsWriter, finished_slots, load_results
from sim.scenario import SCENARIOS_DIR, load_scenario


def _rows(round_: int) -> dict[str, list[dict]]:
    rng = np.random.default_rng(round_ + 1)
    cap = [float(rng.normal()), None]  # a home without a cap: NaN, not an object column
    return {
        "transactions": [
            {
                "label": "private.submitRange",
                "sender": f"0x{k:040x}",
                "gas_used": 40_000 + k,
                "latency_s": float(rng.random()),
                "block": round_ * 10 + k,
                "tx_hash": f"0x{round_:032x}{k:032x}",
                "round": round_ if round_ >= 0 else None,
                "status": 1,
            }
            for k in range(3)
        ],
        "homes": [
            {
                "round": round_,
                "home": h,
                "group": h % 2 - (h == 1),
                "smart": h != 1,
                "submitted": bool(rng.random() > 0.2),
                "cap_kw": cap[h % 2],
                "import_kw": float(rng.normal()),
            }
            for h in range(4)
        ],
        "voltages": [
            {"round": round_, "bus": b, "phase": ph, "vm_pu": float(1 + rng.normal() / 50)}
            for b in range(3)
            for ph in "abc"
        ],
        "slots": [
            {
                "round": round_,
                "hour": 9 + round_ / 4,
                "lambda": float(rng.random()),
                "dso_infeasible": bool(round_ % 3 == 0),
                "homes_submitted": 3,
                **{f"v_{m}_{ph}_pu": 1.0 for m in ("min", "max") for ph in "abc"},
            }
        ],
    }


def _write(folder, fmt: str, rounds: range, close: bool = True) -> ResultsWriter:
    writer = ResultsWriter(folder, load_scenario(SCENARIOS_DIR / "quick.yaml"), fmt)
    writer.append("transactions", _rows(-1)["transactions"])  # deployment: no round
    for r in rounds:
        for table, rows in sorted(_rows(r).items(), key=lambda item: item[0] == "slots"):
            writer.append(table, rows)
    if close:
        writer.close()
    return writer


@pytest.mark.parametrize("chunk", [96, 3])
def test_parts_consolidated_and_csv_read_back_identically(tmp_path, monkeypatch, chunk) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_PARTS", chunk)
    _write(tmp_path / "crashed", "parquet", range(8), close=False)
    _write(tmp_path / "parquet", "parquet", range(8))
    _write(tmp_path / "csv", "csv", range(8))
    crashed = load_results(tmp_path / "crashed")
    assert (tmp_path / "crashed" / "homes.parts").is_dir()
    assert not (tmp_path / "parquet" / "homes.parts").exists()
    for name in ("parquet", "csv"):
        other = load_results(tmp_path / name)
        for table in TABLES:
            pd.testing.assert_frame_equal(crashed[table], other[table], check_exact=True)
    assert finished_slots(tmp_path / "crashed") == list(range(8))
    homes, tx = crashed["homes"], crashed["transactions"]
    assert len(homes) == 32 and homes.cap_kw.dtype == "float64" and homes.cap_kw.isna().sum() == 16
    assert homes.smart.dtype == "bool" and homes.group.dtype == "int64"
    assert tx["round"].dtype == "Int64" and tx["round"].isna().sum() == 3
    assert crashed["dlmp"].empty  # a table the run never wrote


def test_a_crash_between_chunk_and_part_removal_reads_each_row_once(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "CHUNK_PARTS", 2)
    folder = tmp_path / "run"
    _write(folder, "parquet", range(3), close=False)
    parts = folder / "slots.parts"
    assert sorted(p.name for p in parts.iterdir()) == [
        "chunk-000001-000002.parquet",
        "part-000003.parquet",
    ]
    # as if the process died after writing the chunk but before removing its parts
    chunk = pd.read_parquet(parts / "chunk-000001-000002.parquet")
    chunk.iloc[:1].to_parquet(parts / "part-000001.parquet", index=False)
    chunk.iloc[1:].to_parquet(parts / "part-000002.parquet", index=False)
    (parts / "part-000004.parquet.tmp").write_bytes(b"PAR1 torn")  # a part cut off mid-write
    assert finished_slots(folder) == [0, 1, 2]


def test_a_new_run_replaces_the_tables_of_either_format(tmp_path) -> None:
    _write(tmp_path, "csv", range(2))
    _write(tmp_path, "parquet", range(1))
    assert not list(tmp_path.glob("*.csv"))
    assert finished_slots(tmp_path) == [0]
