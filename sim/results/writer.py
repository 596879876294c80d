"""The results folder of a run: the resolved scenario and tidy tables, slot by slot.

Every table is keyed by ``round``: the market round, which is also the index of the simulated
slot counted from the run's first slot (round 0 starts at ``time.start_hour``; the slot of the
day is ``hour / slot length``; the slots table has ``hour``, the run's hour from midnight of
the first day). Transactions outside any round (deployment, registration) have an empty
``round``.

Tables (one row per round and key, units in column names):
    slots         lambda, DSO iterations, losses, substation power, voltage extremes per phase
    groups        price band, revealed [Lmin, Lmax], contributors, lambda of the group
    homes         per home: band, range, cap, actual import, comfort violation
    dlmp          per site (bus-phase): DLMP and its energy/loss/congestion/voltage parts
    voltages      per bus-phase: AC voltage after dispatch (pu)
    lines         per line-phase: current (A) and loading (%)
    transactions  per transaction: call, gas used, latency, block, round

Formats (`outputs.format`, `blockhems run --format`): ``parquet`` (default) or ``csv``. Columns
are typed the same in both (`COLUMN_TYPES`: integers, booleans, strings; every other numeric
column float64), so `load_results` gives identical frames from either.

Crash safety: every table is appended when its slot finishes, and the slots table last, so a
slot listed there is complete in every table (`finished_slots`). CSV appends and flushes one
block of rows per slot. Parquet writes one part file per table and slot into ``<table>.parts/``
(written to a temporary name, then renamed: a part is whole or absent); every `CHUNK_PARTS`
parts are merged (from memory) into one chunk file of the same folder, and
`ResultsWriter.close` turns the chunks into ``<table>.parquet`` and removes the folder.
`load_results` reads a finished ``<table>.parquet``, or else the chunks and parts of an
interrupted run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from sim.constants import VOLL_USD_PER_KWH
from sim.errors import BlockhemsError
from sim.results.limits import limit_summary, verdict
from sim.scenario import Scenario, dump_scenario
from sim.table_io import (
    COMPRESSION,
    arrow_rows,
    concat,
    part_files,
    part_path,
    read_table,
    typed,
    write_atomic,
)

TABLES = ("slots", "groups", "homes", "dlmp", "voltages", "lines", "transactions")
FORMATS = ("parquet", "csv")
Format = Literal["parquet", "csv"]
CHUNK_PARTS = 96  # parts of a table merged into one chunk file (a day of 15-min slots)


class ResultsError(BlockhemsError, RuntimeError):
    """A results folder is missing or incomplete."""


class ResultsWriter:
    """Append-only tables of one run in `out_dir`, as Parquet (default) or CSV."""

    def __init__(
        self,
        out_dir: Path,
        scenario: Scenario,
        fmt: Format | None = None,
        resume_round: int | None = None,
    ) -> None:
        """A new run's tables replace an earlier run's in the same folder; a resumed run's
        (`resume_round`) keep the rows of the rounds before it and drop the rest (a slot
        the interruption left half written)."""
        self.out_dir = Path(out_dir)
        self.format: Format = fmt or scenario.outputs.format
        if self.format not in FORMATS:
            raise ValueError(f"unknown results format {self.format!r}; formats: parquet, csv")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.step_s: dict[str, float] = {}  # wall seconds reported by simulator processes
        self._parts: dict[str, int] = {}  # parts written per table
        self._pending: dict[str, list[pa.Table]] = {}  # parts since the last chunk, per table
        self._columns: dict[str, list[str]] = {}  # CSV header per table
        kept = {}
        if resume_round is not None:
            for table in TABLES:
                staged = self.out_dir / f"{table}.parts.resumed"  # an earlier resume cut short
                if staged.is_dir() and not (self.out_dir / f"{table}.parts").exists():
                    os.replace(staged, self.out_dir / f"{table}.parts")
                frame = read_table(self.out_dir, table)
                if not frame.empty:
                    kept[table] = frame[~(frame["round"] >= resume_round)]
        for table in TABLES:  # either format
            self._replace(table, kept.get(table))
        (self.out_dir / "scenario.yaml").write_text(dump_scenario(scenario))

    def _replace(self, table: str, kept: pd.DataFrame | None) -> None:
        """Start `table` afresh, holding the `kept` rows of a resumed run (None: none). The
        kept rows are written in full under a temporary name before the old files go, so an
        interruption here loses nothing: at worst the old files are still in place. Parquet
        keeps them as the chunk before the first part (``chunk-000000-000000``)."""
        csv, parquet = self.out_dir / f"{table}.csv", self.out_dir / f"{table}.parquet"
        folder = self.out_dir / f"{table}.parts"
        staged = self.out_dir / f"{table}.parts.resumed"
        shutil.rmtree(staged, ignore_errors=True)
        if kept is None:
            csv.unlink(missing_ok=True)
            parquet.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
        elif self.format == "csv":
            tmp = csv.with_name(csv.name + ".tmp")
            kept.to_csv(tmp, index=False)
            self._columns[table] = list(kept.columns)
            os.replace(tmp, csv)
        else:
            staged.mkdir()
            rows = pa.Table.from_pandas(typed(table, kept), preserve_index=False)
            write_atomic(rows, staged / "chunk-000000-000000.parquet")
            shutil.rmtree(folder, ignore_errors=True)
            parquet.unlink(missing_ok=True)
            os.replace(staged, folder)

    def append(self, table: str, rows: pd.DataFrame | list[dict]) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
        if len(rows) == 0:
            return
        if self.format == "csv":
            self._append_csv(table, rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows))
        elif isinstance(rows, pd.DataFrame):
            self._append_part(table, pa.Table.from_pandas(typed(table, rows), preserve_index=False))
        else:  # the recorder's lists of dicts: straight to Arrow (a third of the pandas path)
            self._append_part(table, arrow_rows(table, rows))

    def _append_csv(self, table: str, frame: pd.DataFrame) -> None:
        path = self.out_dir / f"{table}.csv"
        header = table not in self._columns
        columns = self._columns.setdefault(table, list(frame.columns))
        frame.reindex(columns=columns).to_csv(path, mode="a", header=header, index=False)

    def _append_part(self, table: str, rows: pa.Table) -> None:
        folder = self.out_dir / f"{table}.parts"
        folder.mkdir(exist_ok=True)
        seq = self._parts.get(table, 0) + 1
        self._parts[table] = seq
        write_atomic(rows, part_path(folder, seq))
        pending = self._pending.setdefault(table, [])
        pending.append(rows)
        if len(pending) == CHUNK_PARTS:
            self._write_chunk(table)

    def _write_chunk(self, table: str) -> None:
        """Merge the parts written since the last chunk (kept in memory, not read back)."""
        folder, pending = self.out_dir / f"{table}.parts", self._pending.pop(table)
        last = self._parts[table]
        first = last - len(pending) + 1
        write_atomic(concat(pending), folder / f"chunk-{first:06d}-{last:06d}.parquet")
        for k in range(first, last + 1):  # a crash before this leaves parts the chunk covers
            part_path(folder, k).unlink()

    def close(self) -> None:
        """Consolidate each Parquet table into ``<table>.parquet``: a run of one chunk is
        renamed into place; longer ones are streamed one chunk at a time, so memory stays at
        one chunk. Nothing to do for CSV."""
        if self.format != "parquet":
            return
        for table in TABLES:
            folder = self.out_dir / f"{table}.parts"
            if not folder.is_dir():
                continue
            if self._pending.get(table):
                self._write_chunk(table)
            files = part_files(folder)
            target = self.out_dir / f"{table}.parquet"
            if len(files) == 1:
                os.replace(files[0], target)
            elif files:
                schema = pa.unify_schemas([pq.read_schema(f) for f in files])
                tmp = target.with_name(target.name + ".tmp")
                with pq.ParquetWriter(tmp, schema, compression=COMPRESSION) as out:
                    for f in files:
                        out.write_table(_conform(pq.read_table(f), schema))
                os.replace(tmp, target)
            shutil.rmtree(folder)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns in its order (missing ones null) and types."""
    for column in schema:
        if column.name not in table.column_names:
            table = table.append_column(column, pa.nulls(len(table), column.type))
    return table.select(schema.names).cast(schema)


def table_files(out_dir: str | Path) -> list[Path]:
    """The files and part folders holding the tables of a results folder."""
    out_dir = Path(out_dir)
    names = [f"{t}.{ext}" for t in TABLES for ext in ("parquet", "parts", "csv")]
    return [out_dir / n for n in names if (out_dir / n).exists()]


def load_results(out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a results folder, Parquet or CSV, finished or interrupted (missing
    tables are empty frames)."""
    out_dir = Path(out_dir)
    if not (out_dir / "scenario.yaml").exists():
        raise ResultsError(f"{out_dir} is not a blockhems results folder (no scenario.yaml)")
    return {table: read_table(out_dir, table) for table in TABLES}


def finished_slots(out_dir: str | Path) -> list[int]:
    """Rounds whose row made it into the slots table (written last in each slot)."""
    slots = load_results(out_dir)["slots"]
    return [] if slots.empty else sorted(slots["round"].astype(int).tolist())


KEYS_RANDOM = "random (OS CSPRNG, per home and run)"
KEYS_DETERMINISTIC = (
    "DETERMINISTIC (debug: derived from the scenario name and homes.seed; anyone holding "
    "scenario.yaml can unmask every submission)"
)


def run_keys(out_dir: str | Path) -> str:
    """How the run's keys were made, from its resolved scenario.yaml."""
    data = yaml.safe_load((Path(out_dir) / "scenario.yaml").read_text()) or {}
    deterministic = (data.get("chain") or {}).get("debug_deterministic_keys", False)
    return KEYS_DETERMINISTIC if deterministic else KEYS_RANDOM


def stability(groups: pd.DataFrame, cap_usd_per_kwh: float = VOLL_USD_PER_KWH) -> dict:
    """How much the market moves from slot to slot: the mean absolute change of each group's
    band edges ($/kWh) and lambda between consecutive rounds (averaged over groups), and the
    group-rounds whose band touched the price cap (+-VOLL: stage 1 priced shedding)."""
    if groups.empty:
        return {}
    ordered = groups.sort_values(["group", "round"])
    by_group = ordered.groupby("group")

    def mean_step(column: str) -> float:
        steps = by_group[column].diff().abs()
        return float(steps.groupby(ordered.group).mean().mean())

    at_cap = (ordered.p_high_usd_per_kwh >= cap_usd_per_kwh - 1e-9) | (
        ordered.p_low_usd_per_kwh <= -cap_usd_per_kwh + 1e-9
    )
    return {
        "band_low_step_mean_usd_per_kwh": mean_step("p_low_usd_per_kwh"),
        "band_high_step_mean_usd_per_kwh": mean_step("p_high_usd_per_kwh"),
        "lambda_step_mean": mean_step("lambda_group"),
        "group_rounds_at_price_cap": int(at_cap.sum()),
    }


def summarize(
    out_dir: str | Path, v_band: tuple[float, float], slot_h: float, rating_factor: float = 1.0
) -> dict:
    """End-of-run figures: lambda range, voltage extremes per phase, every limit
    (`sim.results.limits.limit_summary`), energy shifted (kWh the DSO held below the homes'
    low-price demand), comfort, gas per slot."""
    tables = load_results(out_dir)
    slots, homes, tx = tables["slots"], tables["homes"], tables["transactions"]
    out: dict = {"slots": int(len(slots)), "keys": run_keys(out_dir)}
    if slots.empty:
        return out
    out["lambda_min"] = float(slots["lambda"].min())
    out["lambda_max"] = float(slots["lambda"].max())
    for ph in ("a", "b", "c"):
        out[f"v_min_{ph}_pu"] = float(slots[f"v_min_{ph}_pu"].min())
        out[f"v_max_{ph}_pu"] = float(slots[f"v_max_{ph}_pu"].max())
    out.update(limit_summary(slots, v_band, slot_h, rating_factor))
    out["verdict"] = verdict(out)
    smart = homes[homes.smart]
    # held below what the homes would draw at the band's low price (Lmax in the paper's mode)
    low = smart["low_price_kw"] if "low_price_kw" in smart else smart.lmax_kw
    shifted = (low - smart.cap_kw).clip(lower=0) * slot_h
    out["energy_shifted_kwh"] = float(shifted.sum())
    out["comfort_violations"] = int((homes.comfort_violation_c > 1e-6).sum())
    groups = tables["groups"]
    out.update(stability(groups))
    refused = groups["implausible"].astype(bool) if "implausible" in groups else None
    out["implausible_group_rounds"] = 0 if refused is None else int(refused.sum())
    per_slot = tx.dropna(subset=["round"]).groupby("round").gas_used.sum() if len(tx) else tx
    out["gas_per_slot_mean"] = float(per_slot.mean()) if len(per_slot) else 0.0
    out["transactions"] = int(len(tx))
    return out
