"""One bad home in one group of the quick scenario: its lie or its garbage word poisons the
group's sum; the DSO refuses that sum, plans the group on its forecast, clears the other
groups, and the run goes on inside the voltage band."""

from __future__ import annotations

import numpy as np
import pytest

from sim.market.agents import HomesAgent
from sim.offline import run_offline
from sim.results.limits import limit_summary
from sim.scenario import SCENARIOS_DIR, load_scenario, override

BAD_HOME = 0


def _lie(points_kw: np.ndarray, kind: str) -> np.ndarray:
    if kind == "minus_1_gw":
        return np.full_like(points_kw, -1e6)
    if kind == "plus_1_gw":
        return np.full_like(points_kw, 1e6)
    return points_kw[::-1] + np.arange(len(points_kw))  # demand rising with the price


def _check(tables, scenario, bad_group: int, poisoned_rounds: set[int]) -> None:
    groups = tables["groups"]
    flagged = set(groups[groups.implausible & (groups.group == bad_group)]["round"])
    assert flagged == poisoned_rounds
    assert not groups[groups.group != bad_group].implausible.any()
    others = groups[groups.group != bad_group]
    assert others.revealed.all() and others.lambda_group.between(0, 1).all()
    d = scenario.dso
    summary = limit_summary(tables["slots"], (d.v_min_pu, d.v_max_pu), 0.25)
    assert summary["voltage_violations"] == 0
    assert summary["slots_with_line_overload"] == 0


@pytest.mark.parametrize("kind", ["minus_1_gw", "plus_1_gw", "rising"])
def test_an_honestly_masked_lie_is_refused(monkeypatch, kind: str) -> None:
    respond = HomesAgent.respond

    def lying_respond(self, round_, bands):
        respond(self, round_, bands)
        if round_ >= 1:
            self.points_kw[BAD_HOME] = _lie(self.points_kw[BAD_HOME], kind)

    monkeypatch.setattr(HomesAgent, "respond", lying_respond)
    scenario = override(load_scenario(SCENARIOS_DIR / "quick.yaml"), {"time.hours": 1})
    run = run_offline(scenario, grid_tables=False)
    bad_group = run.homes.group_of[BAD_HOME]
    _check(run.tables, run.scenario, bad_group, {1, 2, 3})


def test_poisoned_words_on_chain_are_refused(monkeypatch, tmp_path) -> None:
    """Through the co-simulation and the contract, from round 1 on: one home adds random
    words to its masked submission, a home of another group adds 2^127."""
    from sim.chain.masking import MODULUS
    from sim.chain.private import HomeClient
    from sim.cosim.world import run_scenario
    from sim.results.writer import load_results

    scenario = override(load_scenario(SCENARIOS_DIR / "quick.yaml"), {"time.hours": 1})
    masked_range = HomeClient.masked_range
    rng = np.random.default_rng(3)
    bad: dict[str, str] = {}  # address: kind, the first home seen of the first two groups

    def poisoned(self, round_, lower, upper):
        words = masked_range(self, round_, lower, upper)
        groups_seen = {kind: address for address, kind in bad.items()}
        if len(bad) < 2 and self.address not in bad:
            if all(self.group != g for g, _ in bad_groups.values()):
                kind = "garbage" if "garbage" not in groups_seen else "top_bit"
                bad[self.address] = kind
                bad_groups[kind] = (self.group, self.address)
        if round_ >= 1 and self.address in bad:
            extra = (
                [1 << 127, 0]
                if bad[self.address] == "top_bit"
                else [int(v) << 64 | int(v) for v in rng.integers(1, 2**62, size=2)]
            )
            words = tuple((w + e) % MODULUS for w, e in zip(words, extra, strict=True))
        return words

    bad_groups: dict[str, tuple[int, str]] = {}
    monkeypatch.setattr(HomeClient, "masked_range", poisoned)
    outcome = run_scenario(scenario, tmp_path, progress=False)
    tables = load_results(tmp_path)
    assert set(bad.values()) == {"garbage", "top_bit"}
    groups = tables["groups"]
    poisoned_groups = {g for g, _ in bad_groups.values()}
    for group, _ in bad_groups.values():
        flagged = set(groups[groups.implausible & (groups.group == group)]["round"])
        assert flagged == {1, 2, 3}
    others = groups[~groups.group.isin(poisoned_groups)]
    assert others.revealed.all() and not others.implausible.any()
    d = outcome.parts.scenario.dso
    summary = limit_summary(tables["slots"], (d.v_min_pu, d.v_max_pu), 0.25)
    assert summary["voltage_violations"] == 0
