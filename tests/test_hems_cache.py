"""The set-up cache (sim.cache): a cached fleet is the fresh fleet, bit for bit; a damaged
or altered entry is recomputed; concurrent writers never leave a half-written entry."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from sim.cache import ENV, cache_key, cached_arrays
from sim.hems import FleetConfig, HEMSFleet
from sim.hems.policy import DEVICES

CONFIG = {"seed": 3, "n_homes": 8, "smart_share": 0.75, "start_day": 196}


def _fleet_day(monkeypatch: pytest.MonkeyPatch, cache: str) -> HEMSFleet:
    """A fleet trained and run for a day of slots at a fixed price and half-way caps."""
    from sim.hems.data import weather_year

    monkeypatch.setenv(ENV, cache)
    weather_year.cache_clear()  # the process keeps a year of weather too
    fleet = HEMSFleet(FleetConfig(**CONFIG))
    fleet.train()
    for t in range(fleet.n_slots):
        lmin, lmax = fleet.compute_ranges(t, 0.08, 0.25)
        fleet.dispatch(t, 0.5 * (lmin + lmax))
    return fleet


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npz"))


def test_cached_and_fresh_fleets_are_identical(tmp_path, monkeypatch):
    fresh = _fleet_day(monkeypatch, "off")
    assert not fresh.training_cached
    assert not tmp_path.exists() or not _entries(tmp_path)
    first = _fleet_day(monkeypatch, str(tmp_path))  # fills the cache
    assert not first.training_cached
    kinds = {p.parent.name for p in _entries(tmp_path)}
    assert kinds == {"value_functions", "household", "weather"}
    cached = _fleet_day(monkeypatch, str(tmp_path))
    assert cached.training_cached
    for other in (first, cached):
        for name in ("temp_out_c", "ghi_w_m2", "pv_kw_per_kwp"):
            np.testing.assert_array_equal(
                getattr(other.weather, name), getattr(fresh.weather, name)
            )
        np.testing.assert_array_equal(other.load_kw, fresh.load_kw)
        np.testing.assert_array_equal(other.occupancy, fresh.occupancy)
        for d in DEVICES:
            np.testing.assert_array_equal(other.value_functions.v[d], fresh.value_functions.v[d])
        for name, values in fresh.records.items():
            np.testing.assert_array_equal(other.records[name], values, err_msg=name)


def test_a_different_input_is_a_different_entry(tmp_path, monkeypatch):
    a = _fleet_day(monkeypatch, str(tmp_path))
    n = len(_entries(tmp_path))
    monkeypatch.setenv(ENV, str(tmp_path))
    b = HEMSFleet(FleetConfig(**{**CONFIG, "seed": 4}))
    b.train()
    assert not b.training_cached
    assert len(_entries(tmp_path)) > n
    assert not np.array_equal(a.value_functions.v["bat"], b.value_functions.v["bat"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "swap"])
def test_a_damaged_entry_is_recomputed(tmp_path, monkeypatch, damage):
    monkeypatch.setenv(ENV, str(tmp_path))
    calls = []

    def compute(scale: float = 1.0) -> dict[str, np.ndarray]:
        calls.append(scale)
        return {"x": np.arange(6.0) * scale}

    arrays, hit = cached_arrays("test", "code", {"n": 6}, compute)
    assert not hit and calls == [1.0]
    (path,) = _entries(tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file")
    else:  # a well-formed entry of other inputs under this key (a copied file)
        other, _ = cached_arrays("test", "code", {"n": 7}, lambda: compute(2.0))
        other_path = next(p for p in _entries(tmp_path) if p != path)
        path.write_bytes(other_path.read_bytes())
    again, hit = cached_arrays("test", "code", {"n": 6}, compute)
    assert not hit
    np.testing.assert_array_equal(again["x"], arrays["x"])
    third, hit = cached_arrays("test", "code", {"n": 6}, compute)  # rewritten and valid
    assert hit
    np.testing.assert_array_equal(third["x"], arrays["x"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_key_covers_code_and_every_input():
    base = cache_key("k", "code", {"a": np.zeros(3), "b": 1})
    assert base == cache_key("k", "code", {"b": 1, "a": np.zeros(3)})
    assert base != cache_key("k", "code2", {"a": np.zeros(3), "b": 1})
    assert base != cache_key("k", "code", {"a": np.zeros(3, dtype=np.float32), "b": 1})
    assert base != cache_key("k", "code", {"a": np.zeros((3, 1)), "b": 1})
    assert base != cache_key("k", "code", {"a": np.array([0.0, 0.0, 1e-300]), "b": 1})
    assert base != cache_key("k", "code", {"a": np.zeros(3), "b": 1.0})
    with pytest.raises(TypeError):
        cache_key("k", "code", {"a": object()})


def _writer(folder: str, seed: int) -> float:
    import os

    os.environ[ENV] = folder
    arrays, _ = cached_arrays(
        "race", "code", {"n": 200_000}, lambda: {"x": np.arange(200_000, dtype=float)}
    )
    return float(arrays["x"].sum())


def test_concurrent_writers_leave_one_valid_entry(tmp_path, monkeypatch):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        sums = pool.starmap(_writer, [(str(tmp_path), k) for k in range(8)])
    assert set(sums) == {float(np.arange(200_000, dtype=float).sum())}
    assert len(_entries(tmp_path)) == 1 and not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setenv(ENV, str(tmp_path))
    arrays, hit = cached_arrays("race", "code", {"n": 200_000}, lambda: {"x": np.zeros(1)})
    assert hit and float(arrays["x"].sum()) == sums[0]


def _same_feeder(a, b) -> None:
    import pandas as pd

    for name in ("homes", "sites", "zones"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_series_equal(a.site_load, b.site_load)
    assert (a.name, a.v_min_pu, a.v_max_pu, a.notes) == (b.name, b.v_min_pu, b.v_max_pu, b.notes)
    tables = [k for k, v in a.net.items() if isinstance(v, pd.DataFrame) and not v.empty]
    assert {"bus", "line", "trafo", "ext_grid", "asymmetric_load"} <= set(tables)
    for table in tables:
        pd.testing.assert_frame_equal(a.net[table], b.net[table], check_dtype=True)


def test_cached_feeder_is_the_fresh_feeder_and_a_copy_per_call(tmp_path, monkeypatch):
    import sim.cache
    from grid_models import build_feeder
    from grid_models.pgm import PGMPowerFlow

    monkeypatch.setenv(ENV, "off")
    fresh = build_feeder("small", min_group_size=3)
    monkeypatch.setenv(ENV, str(tmp_path))
    monkeypatch.setattr(sim.cache, "_MEMO", {})
    built = build_feeder("small", min_group_size=3)
    (entry,) = tmp_path.rglob("*.pickle")
    monkeypatch.setattr(sim.cache, "_MEMO", {})  # the next one comes from the disk
    from_disk = build_feeder("small", min_group_size=3)
    memo = build_feeder("small", min_group_size=3)
    for other in (built, from_disk, memo):
        _same_feeder(fresh, other)
    memo.net.line.loc[memo.net.line.index[0], "length_km"] *= 2  # copies are independent
    assert (
        build_feeder("small", min_group_size=3).net.line.length_km.iloc[0]
        == (fresh.net.line.length_km.iloc[0])
    )
    p = np.full(fresh.n_sites, 2.0)
    np.testing.assert_array_equal(
        PGMPowerFlow(fresh)(p, p / 3).vm_pu, PGMPowerFlow(from_disk)(p, p / 3).vm_pu
    )
    other = build_feeder("small", min_group_size=4)  # other options: another entry
    assert len(list(tmp_path.rglob("*.pickle"))) == 2
    assert not other.zones.equals(fresh.zones) or other.zones.n_homes.min() >= 4
    entry.write_bytes(entry.read_bytes()[:-10])  # damaged: rebuilt, never unpickled
    monkeypatch.setattr(sim.cache, "_MEMO", {})
    _same_feeder(fresh, build_feeder("small", min_group_size=3))
    assert entry.read_bytes().split(b"\n", 1)[0].decode().split()[0] == entry.stem
