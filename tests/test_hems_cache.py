"""The set-up cache (sim.hems.cache): a cached fleet is the fresh fleet, bit for bit; a damaged
or altered entry is recomputed; concurrent writers never leave a half-written entry."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from sim.hems import FleetConfig, HEMSFleet
from sim.hems.cache import ENV, cache_key, cached_arrays
from sim.hems.policy import DEVICES

CONFIG = {"seed": 3, "n_homes": 8, "smart_share": 0.75, "start_day": 196}


def _fleet_day(monkeypatch: pytest.MonkeyPatch, cache: str) -> HEMSFleet:
    """A fleet trained and run for a day of slots at a fixed price and half-way caps."""
    monkeypatch.setenv(ENV, cache)
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
    assert kinds == {"value_functions", "household"}
    cached = _fleet_day(monkeypatch, str(tmp_path))
    assert cached.training_cached
    for other in (first, cached):
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
