"""The DSO's forecast uses public information only and adds up."""

from __future__ import annotations

import numpy as np
import pytest

from grid_models import build_feeder
from sim.dso import DSO
from sim.dso.forecast import DSOForecaster
from sim.market.setup import aggregation_groups
from sim.scenario import ScenarioError


def _mixed_fleet(feeder) -> np.ndarray:
    """Every home a HEMS home but four of phase a's ten."""
    smart = np.ones(feeder.n_homes, dtype=bool)
    smart[feeder.homes.home_id[feeder.homes.phase == "a"].to_numpy()[:4]] = False
    return smart


def _dso_and_forecaster(profile: np.ndarray):
    """Small feeder, mixed fleet, groups of >= 3 HEMS homes: (feeder, smart, dso, forecaster)."""
    feeder = build_feeder("small", min_group_size=3)
    smart = _mixed_fleet(feeder)
    groups = aggregation_groups(feeder, smart, 3)
    dso = DSO(feeder, groups=groups)
    sizes = [len(groups[int(g)]) for g in dso.group_ids]
    return feeder, smart, dso, DSOForecaster(feeder, smart, dso.weights, sizes, profile)


def test_forecast_totals_and_dispatch_memory() -> None:
    profile = np.linspace(0.5, 1.5, 96)
    feeder, smart, dso, fc = _dso_and_forecaster(profile)
    sizes = dso.group_ids

    assert fc.ordinary_kw(10).sum() == np.float64((~smart).sum() * profile[10])
    assert np.isclose(fc.total_kw(10).sum(), feeder.n_homes * profile[10])
    caps = np.arange(1.0, len(sizes) + 1.0) * 7.0
    fc.observe_dispatch(caps)
    assert np.allclose(fc.group_kw(11), caps)
    assert np.isclose(fc.total_kw(11).sum(), (~smart).sum() * profile[11] + caps.sum())


def test_groups_hold_only_hems_homes_of_one_phase_and_reach_the_minimum() -> None:
    feeder = build_feeder("small", min_group_size=3)
    smart = _mixed_fleet(feeder)
    groups = aggregation_groups(feeder, smart, 3)
    phase = feeder.homes.set_index("home_id").phase
    members = [h for m in groups.values() for h in m]
    assert sorted(members) == sorted(np.flatnonzero(smart).tolist())
    for m in groups.values():
        assert len(m) >= 3 and phase.loc[m].nunique() == 1


def test_a_phase_with_too_few_hems_homes_names_the_keys() -> None:
    feeder = build_feeder("small", min_group_size=3)
    smart = np.ones(feeder.n_homes, dtype=bool)
    smart[feeder.homes.home_id[feeder.homes.phase == "c"].to_numpy()[:3]] = False  # 2 of 5 left
    with pytest.raises(ScenarioError, match="phase c has only 2 smart homes.*min_group_size 3"):
        aggregation_groups(feeder, smart, 3)


class _RecordingClient:
    """Stands in for the chain client: records the bands the DSO would post."""

    def __init__(self) -> None:
        self.posted: list[tuple] = []

    def open_rounds(self, round_, bands, deadline) -> None:
        for group, (p_low, p_high) in bands.items():
            self.posted.append((round_, group, p_low, p_high, deadline))


def test_stage1_falls_back_to_the_research_forecast_after_an_absurd_dispatch() -> None:
    from sim.market.agents import DSOAgent

    _, _, dso, fc = _dso_and_forecaster(np.full(96, 1.0))
    sizes = dso.group_ids
    client = _RecordingClient()
    agent = DSOAgent(dso, client, fc, [0.12] * 4)
    agent.post_prices(0, 10, deadline=1_000)
    assert not agent.stage1_fallback and len(client.posted) == len(sizes)
    fc.observe_dispatch(np.full(len(sizes), 400.0))  # far beyond what the feeder carries
    agent.post_prices(1, 11, deadline=2_000)
    assert agent.stage1_fallback
    assert [p[0] for p in client.posted[len(sizes) :]] == [1] * len(sizes)
    assert all(p[2] <= p[3] for p in client.posted)


def test_members_that_did_not_submit_are_planned_at_the_contributors_average() -> None:
    """A group's revealed sums cover its contributors only; its other members still dispatch
    their own bids at the group's lambda, so the DSO plans the group at members x average."""
    from sim.market.agents import DSOAgent, RevealedBid

    _, _, dso, fc = _dso_and_forecaster(np.full(96, 1.0))
    agent = DSOAgent(dso, _RecordingClient(), fc, [0.12] * 4)
    agent.post_prices(0, 10, deadline=1_000)
    per_home_kw = np.array([3.0, 2.0, 1.5, 0.5, 0.2])  # demand at the five rising prices
    sizes = fc.group_sizes.astype(int)
    aggregates = {}
    for g, group in enumerate(agent.group_ids):
        contributors = int(sizes[g]) - (1 if g == 0 else 0)  # one member of group 0 dropped
        points_w = tuple(int(round(contributors * 1000 * p)) for p in per_home_kw)
        q_var = tuple(int(round(contributors * 300 * p)) for p in per_home_kw)
        aggregates[group] = RevealedBid(points_w, contributors, q_var)
    agent.decide(0, 10, aggregates)
    for g in range(len(agent.group_ids)):
        np.testing.assert_allclose(agent.group_points_kw[g], sizes[g] * per_home_kw, rtol=1e-9)


def test_band_damping_posts_a_share_of_the_last_band() -> None:
    """`dso.band_damping` a: the posted band is a x the last posted + (1 - a) x stage 1's."""
    from sim.market.agents import DSOAgent

    _, _, dso, fc = _dso_and_forecaster(np.full(96, 1.0))
    client = _RecordingClient()
    agent = DSOAgent(dso, client, fc, [0.12, 0.30], band_damping=0.25)
    agent.post_prices(0, 10, deadline=1_000)
    first = {g: (lo, hi) for _, g, lo, hi, _ in client.posted}
    agent.post_prices(1, 11, deadline=2_000)  # a higher energy price: a new band
    second = {g: (lo, hi) for r, g, lo, hi, _ in client.posted if r == 1}
    for k, group in enumerate(agent.group_ids):
        plain = (agent.stage1.p_low[k], agent.stage1.p_high[k])
        for j in range(2):
            expected = 0.25 * first[group][j] + 0.75 * plain[j]
            assert np.isclose(second[group][j], expected)
        assert not np.isclose(second[group][0], plain[0])  # damped, not stage 1's own
    with pytest.raises(Exception, match=r"band_damping must be in \[0, 1\)"):
        DSOAgent(dso, client, fc, [0.12], band_damping=1.0)
