"""Reading and writing the results tables' files, either format (no simulation imports, so
that every layer that reads a results folder can use it; the folder's layout and writer are
in `sim.results.writer`).

A table is ``<table>.parquet`` (a finished Parquet run), ``<table>.parts/`` (the chunk and part
files of a Parquet run still going or interrupted) or ``<table>.csv``. `COLUMN_TYPES` types
the columns the same whatever the format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"  # default day: 7.3 MB against snappy's 8.1 MB, and faster to write

# Columns that are not float64, per table ("Int64": integer with missing values).
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "slots": {
        "round": "int64",
        "dso_iterations": "int64",
        "dso_infeasible": "bool",
        "dso_ac_ok": "bool",
        "dso_stage1_fallback": "bool",
        "groups_revealed": "int64",
        "homes_submitted": "int64",
        "comfort_violations": "int64",
        "lines_over_limit": "int64",
    },
    "groups": {
        "round": "int64",
        "group": "int64",
        "revealed": "bool",
        "implausible": "bool",
        "members": "int64",
        "contributors": "int64",
    },
    "homes": {
        "round": "int64",
        "home": "int64",
        "group": "int64",
        "smart": "bool",
        "submitted": "bool",
    },
    "dlmp": {"round": "int64", "site": "int64", "bus": "int64", "phase": "str"},
    "voltages": {"round": "int64", "bus": "int64", "phase": "str"},
    "lines": {"round": "int64", "line": "int64", "phase": "str"},
    "transactions": {
        "label": "str",
        "sender": "str",
        "gas_used": "int64",
        "block": "int64",
        "tx_hash": "str",
        "round": "Int64",
        "status": "int64",
    },
}
PART = re.compile(r"part-(\d+)\.parquet$")
CHUNK = re.compile(r"chunk-(\d+)-(\d+)\.parquet$")


def typed(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the column types of `table` (`COLUMN_TYPES`; other columns float64)."""
    types = COLUMN_TYPES[table]
    columns = {}
    for name in frame.columns:
        column = frame[name]
        kind = types.get(name)
        if kind is None:  # a column not listed: numbers as float64, anything else as it is
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(
                column
            )
            kind = "float64" if numeric or column.isna().all() else None
        if kind is None:
            columns[name] = column
        elif kind == "str":
            columns[name] = column.astype(object).where(column.notna(), None)
        elif kind == "Int64":
            columns[name] = pd.to_numeric(column).astype("Int64")
        else:
            columns[name] = column.astype(kind)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


_ARROW = {
    "int64": pa.int64(),
    "Int64": pa.int64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "float64": pa.float64(),
}


def arrow_schema(table: str, rows: list[dict]) -> pa.Schema:
    """The Arrow schema of `rows` of `table`: `COLUMN_TYPES`, other numbers float64, any
    other column as Arrow infers it from its first value."""
    types = COLUMN_TYPES[table]
    fields = []
    for name in dict.fromkeys(key for row in rows for key in row):  # every key, in order
        kind = types.get(name)
        if kind is None:
            value = next((r[name] for r in rows if r.get(name) is not None), None)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            kind = "float64" if value is None or number else None
            arrow = pa.scalar(value).type if kind is None else _ARROW[kind]
        else:
            arrow = _ARROW[kind]
        fields.append(pa.field(name, arrow))
    return pa.schema(fields)


def arrow_rows(table: str, rows: list[dict]) -> pa.Table:
    """`rows` (dicts with the same keys) of `table` as a typed Arrow table, without pandas."""
    return pa.Table.from_pylist(rows, schema=arrow_schema(table, rows))


def write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression=COMPRESSION)
    os.replace(tmp, path)


def part_path(folder: Path, seq: int) -> Path:
    return folder / f"part-{seq:06d}.parquet"


def part_files(folder: Path) -> list[Path]:
    """The chunks and the parts no chunk covers, in the order they were written."""
    chunks: list[tuple[int, int, Path]] = []
    parts: list[tuple[int, Path]] = []
    for f in folder.iterdir():
        if m := CHUNK.match(f.name):
            chunks.append((int(m[1]), int(m[2]), f))
        elif m := PART.match(f.name):
            parts.append((int(m[1]), f))
    covered = [(a, b) for a, b, _ in chunks]
    files = [(a, f) for a, _, f in chunks]
    files += [(k, f) for k, f in parts if not any(a <= k <= b for a, b in covered)]
    return [f for _, f in sorted(files)]


def concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="default")


def read_table(out_dir: str | Path, table: str) -> pd.DataFrame:
    """One table of a results folder, from whichever format it holds (an empty frame when
    the run wrote none): ``<table>.parquet``, else the parts of an interrupted Parquet run,
    else ``<table>.csv``."""
    out_dir = Path(out_dir)
    consolidated = out_dir / f"{table}.parquet"
    folder = out_dir / f"{table}.parts"
    csv = out_dir / f"{table}.csv"
    if consolidated.exists():
        frame = pq.read_table(consolidated).to_pandas()
    elif folder.is_dir() and (files := part_files(folder)):
        frame = concat([pq.read_table(f) for f in files]).to_pandas()
    elif csv.exists():
        types = {
            name: ("boolean" if kind == "bool" else object if kind == "str" else kind)
            for name, kind in COLUMN_TYPES[table].items()
        }
        frame = pd.read_csv(
            csv, dtype=types, float_precision="round_trip", keep_default_na=False, na_values=[""]
        )
    else:
        return pd.DataFrame()
    return typed(table, frame)
