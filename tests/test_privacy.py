"""The occupancy-inference attack (issue 7): metrics, the attacker on synthetic cases with a
known answer, what the chain observer can read, and a small run end to end."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.chain.baseline import SeedBaselineClient
from sim.chain.connection import connect
from sim.chain.deployment import setup_market
from sim.chain.masking import decode_watts
from sim.cli import main
from sim.privacy.attacker import (
    AttackError,
    LogisticRegression,
    Split,
    attack_prior,
    attack_series,
)
from sim.privacy.experiment import ExperimentError, run_privacy, whole_days
from sim.privacy.leakage import LeakageError, public_output_leakage
from sim.privacy.metrics import (
    balanced_accuracy,
    chance_margins,
    roc_auc,
    roc_curve,
    score,
)
from sim.privacy.observers import (
    ChainObserver,
    ChainReader,
    ObservedSeries,
    ObserverError,
    Timetable,
    chain_group_series,
    chain_home_series,
)
from sim.scenario import SCENARIOS_DIR, load_scenario

# ---------------------------------------------------------------- metrics


def test_auc_matches_a_hand_count() -> None:
    # positives 0.9 and 0.7, negatives 0.8 and 0.1: 3 of the 4 pairs are ordered right
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 1, 0]), np.array([2.0, 1.0, 1.0])) == pytest.approx(0.75)


def test_auc_equals_the_pairwise_definition_and_the_roc_area() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(60) < 0.4
    s = rng.integers(0, 8, 60).astype(float)  # many ties
    pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(s[y], s[~y])]
    assert roc_auc(y, s) == pytest.approx(np.mean(pairs))
    fpr, tpr = roc_curve(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoids (numpy 1.x and 2.x)
    assert area == pytest.approx(roc_auc(y, s))


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_balanced_accuracy_and_chance_margins_by_hand() -> None:
    y = np.array([1, 1, 1, 1, 0, 0])
    p = np.array([1, 1, 1, 0, 0, 1])
    assert balanced_accuracy(y, p) == pytest.approx(0.5 * (3 / 4 + 1 / 2))
    ba, auc = chance_margins(100, 100)
    assert ba == pytest.approx(1.959964 * np.sqrt(0.02 / 16), rel=1e-6)
    assert auc == pytest.approx(1.959964 * np.sqrt(201 / 120_000), rel=1e-6)


def test_scores_of_a_perfect_guess() -> None:
    y = np.tile([0, 1], 50)
    s = score(y, y.astype(float), y.astype(bool), np.arange(100) // 10)
    assert s.balanced_accuracy == s.auc == 1.0
    assert s.beats_chance and not s.intervals_cover_chance
    assert s.blocks == 10


# ---------------------------------------------------------------- attacker, known answers

HOMES, DAYS, SLOTS_PER_DAY = 20, 4, 24
SPLIT = Split(DAYS, SLOTS_PER_DAY, 2, 3600)


def _occupancy(seed: int) -> np.ndarray:
    """Occupancy that persists from slot to slot (a two-state Markov chain per home)."""
    rng = np.random.default_rng(seed)
    occ = np.zeros((HOMES, DAYS * SLOTS_PER_DAY), dtype=bool)
    occ[:, 0] = rng.random(HOMES) < 0.5
    for t in range(1, occ.shape[1]):
        flip = rng.random(HOMES) < 0.15
        occ[:, t] = occ[:, t - 1] ^ flip
    return occ


def _series(values: np.ndarray, contract: str = "baseline") -> ObservedSeries:
    return ObservedSeries("chain-home", contract, values, ("lower", "upper"), np.arange(HOMES))


def test_attacker_finds_bounds_that_shift_when_occupied() -> None:
    occ = _occupancy(1)
    rng = np.random.default_rng(2)
    lower = 300.0 + 900.0 * occ + rng.normal(0, 150, occ.shape)  # W: +900 W when occupied
    values = np.stack([lower, lower + 2000.0], axis=2)
    result = attack_series(_series(values), occ, SPLIT)
    assert result.scores.balanced_accuracy > 0.95
    assert result.scores.auc > 0.98
    assert result.scores.beats_chance
    assert result.scores.n == HOMES * 2 * SLOTS_PER_DAY  # scored on the last two days only


def test_attacker_is_at_chance_on_labels_unrelated_to_the_data() -> None:
    occ = _occupancy(1)
    rng = np.random.default_rng(2)
    lower = 300.0 + 900.0 * occ + rng.normal(0, 150, occ.shape)
    values = np.stack([lower, lower + 2000.0], axis=2)
    unrelated = _occupancy(99)
    result = attack_series(_series(values), unrelated, SPLIT)
    assert result.scores.intervals_cover_chance
    assert abs(result.scores.auc - 0.5) < 0.06


def test_attacker_is_at_chance_on_uniform_128_bit_words() -> None:
    occ = _occupancy(4)
    rng = np.random.default_rng(5)
    words = rng.uniform(-(2.0**127), 2.0**127, (HOMES, occ.shape[1], 2))
    result = attack_series(_series(words, "private"), occ, SPLIT)
    assert result.scores.intervals_cover_chance
    assert abs(result.scores.balanced_accuracy - 0.5) < 0.06


def test_the_hour_of_day_prior_learns_a_daily_routine() -> None:
    hour = SPLIT.hour
    occ = np.broadcast_to((hour >= 7) & (hour < 22), (HOMES, SPLIT.n_slots))
    assert attack_prior(occ, SPLIT).scores.balanced_accuracy == 1.0


def test_logistic_regression_refuses_one_class() -> None:
    with pytest.raises(AttackError, match="one class"):
        LogisticRegression().fit(np.ones((4, 2)), np.ones(4, dtype=bool))


@pytest.mark.parametrize(
    ("days", "train_days", "message"),
    [(1, 1, "at least 2 days"), (4, 0, "train_days must be in 1..3"), (4, 4, "1..3")],
)
def test_split_needs_days_to_train_and_to_score(days: int, train_days: int, message: str) -> None:
    with pytest.raises(AttackError, match=message):
        Split(days, 96, train_days, 900)


def test_experiment_refuses_too_few_days() -> None:
    scenario = load_scenario(SCENARIOS_DIR / "quick.yaml")
    with pytest.raises(ExperimentError, match="days must be >= 2"):
        whole_days(scenario, 1)
    with pytest.raises(ExperimentError, match="train_days < days"):
        run_privacy(scenario, days=3, train_days=3)


def test_cli_reports_bad_days_clearly(capsys) -> None:
    assert main(["privacy", str(SCENARIOS_DIR / "quick.yaml"), "--days", "1"]) == 1
    assert "days must be >= 2" in capsys.readouterr().err


# ---------------------------------------------------------------- the chain observer


class RecordingReader:
    """A ChainReader that notes every method the observer calls; nothing else is reachable."""

    def __init__(self, inner: ChainReader) -> None:
        self._inner = inner
        self.called: set[str] = set()

    def __getattr__(self, name: str):
        if name not in ChainReader.METHODS:
            raise AttributeError(f"the chain observer may not call {name}")
        self.called.add(name)
        return getattr(self._inner, name)


def test_chain_observer_reads_only_the_chain_and_sees_plaintext_only_on_the_seed_contract() -> None:
    chain = connect("embedded")
    reader = RecordingReader(ChainReader(chain.w3))
    observer = ChainObserver(reader)  # follows the chain from before the deployments
    assert set(vars(observer)) == {"reader", "_filter"}  # no fleet, market or key in reach
    market = setup_market(chain, [0] * 5)
    seed_contract = SeedBaselineClient.deploy(chain, market.dso.account)
    seed_contract.claim_dso(market.dso.account)
    for home in market.homes:
        seed_contract.claim_user(market.dso.account, home.address)
    slot_s, rounds = 900, 3
    timetable = Timetable(chain.now() + 60, slot_s, rounds)
    truth = {}
    for r in range(rounds):
        start = timetable.t0_s + r * slot_s
        chain.set_time(start)
        market.dso.open_round(r, 0, 0.09, 0.15, start + 300)
        seed_contract.submit_price(market.dso.account, 0.15, 0.09)
        for i, home in enumerate(market.homes):
            bounds = (-500 + 100 * i + r, 1500 + 200 * i + r)
            truth[(home.address.lower(), r)] = bounds
            home.submit_range(r, *bounds)
            seed_contract.submit_range(home.account, *bounds)
        for home in market.homes:
            home.send_recovery(r)
        market.dso.read_aggregate(r, 0)
        seed_contract.get_agg(market.dso.account)
        seed_contract.clear(market.dso.account)

    capture = observer.capture(
        {market.contract.address: "private", seed_contract.address: "baseline"}, timetable
    )
    contract = market.contract.address.lower()
    assert reader.called <= set(ChainReader.METHODS)
    assert {"block", "storage_at", "filter_logs"} <= reader.called
    addresses = [h.address for h in market.homes]
    plain = chain_home_series(capture, "baseline", addresses)
    masked = chain_home_series(capture, "private", addresses)
    for i, a in enumerate(addresses):
        for r in range(rounds):
            assert tuple(plain.values[i, r, :2]) == truth[(a.lower(), r)]
            # masked words are uniform in 128 bits: none is anywhere near a home's watts
            assert np.all(np.abs(masked.values[i, r, :2]) > 2.0**64)
    gas = {
        (rec.sender.lower(), rec.block): rec.gas_used
        for rec in chain.records
        if rec.label == "private.submitRange"
    }
    mined = {(s.sender, s.slot): s.gas_used for s in capture.submissions if s.contract == contract}
    assert sorted(mined.values()) == sorted(gas.values())
    for r in range(rounds):  # the gas channel is each home's gas against the round's median
        round_gas = [mined[(a.lower(), r)] for a in addresses]
        expected = np.array(round_gas) - np.median(round_gas)
        assert np.array_equal(masked.values[:, r, 2], expected)
    seed_sums = chain_group_series(capture, "baseline", addresses)
    private_sums = chain_group_series(capture, "private", addresses)
    for r in range(rounds):
        true_sums = np.sum([truth[(a.lower(), r)] for a in addresses], axis=0)
        assert tuple(seed_sums.values[0, r]) == tuple(true_sums)
        # the storage word the observer decodes is the contract's (still masked) group sum
        lower_word, upper_word, _, complete = market.contract.call("getAgg", r, 0)
        assert complete
        assert tuple(private_sums.values[0, r]) == (
            float(decode_watts(lower_word)),
            float(decode_watts(upper_word)),
        )
        assert np.all(np.abs(private_sums.values[0, r]) > 2.0**64)  # masked with the DSO's masks
    with pytest.raises(ObserverError, match="no baseline submissions"):
        chain_home_series(capture, "baseline", [*addresses, "0x" + "ab" * 20])


# ---------------------------------------------------------------- end to end


def test_privacy_command_end_to_end(tmp_path: Path) -> None:
    """The quick scenario's 22 homes over 2 days, in 3-hour slots to keep it short."""
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["time"]["slot_s"] = 10_800
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["privacy", str(path), "--days", "2", "-o", str(out), "-q"]) == 0
    report = json.loads((out / "privacy.json").read_text())
    assert (out / "privacy.png").stat().st_size > 10_000
    assert all(report["checks"].values()), report["checks"]
    assert report["days"] == 2 and report["train_days"] == 1
    assert report["homes_attacked"] == 22
    kinds = {(r["observer"], r["contract"], r["with_hour"]) for r in report["results"]}
    for observer, contract in [
        ("chain-home", "baseline"),
        ("chain-home", "private"),
        ("chain-group", "baseline"),
        ("chain-group", "private"),
        ("dso", "private"),
    ]:
        assert {(observer, contract, False), (observer, contract, True)} <= kinds
    assert ("prior", "", True) in kinds
    assert set(report["verdict"]) == {
        "seed_contract_chain_observer_beats_chance",
        "private_contract_chain_observer_at_chance",
        "private_contract_group_words_at_chance",
    }
    by_kind = {(r["observer"], r["contract"], r["with_hour"]): r for r in report["results"]}
    n_scored = 22 * 8  # one scored day of 8 slots
    assert by_kind[("chain-home", "private", False)]["scores"]["n"] == n_scored
    assert set(by_kind[("dso", "private", True)]["by_group"]) <= set(report["group_sizes"])
    # The measured runs include dropouts (5 % by default), recovered by the survivors; where a
    # group kept the minimum size, the DSO's unmasked sums are the seed contract's public sums
    # (checked in report["checks"] above).
    assert report["dropout_probability"] == 0.05
    assert report["chain"]["dropouts"] > 0
    assert report["checks"]["dropouts_in_the_measured_runs"]
    assert report["checks"]["dso_unmasked_sums_equal_seed_contract_sums"]


# ---------------------------------------------------------------- public outputs' leakage


def _results_folder(path: Path, rounds: int, leak: float, seed: int = 0) -> Path:
    """A synthetic results folder: 3 groups whose dispatched total is a daily curve plus noise,
    and whose next band follows `leak` times the noise (how the market forms bands)."""
    rng = np.random.default_rng(seed)
    slots, groups, homes = [], [], []
    totals = {}
    for r in range(rounds):
        hour = 9 + 0.25 * r
        slots.append(dict(round=r, hour=hour, energy_price_usd_per_kwh=0.12, **{"lambda": 0.5}))
        for g in range(3):
            totals[(r, g)] = 10 + 3 * np.sin(2 * np.pi * hour / 24) + g + rng.normal(0, 2)
    for r in range(rounds):
        for g in range(3):
            previous = totals.get((r - 1, g), 10.0) - 10 - g
            p_low = 0.09 + leak * 0.01 * previous + rng.normal(0, 0.001)
            groups.append(
                dict(round=r, group=g, p_low_usd_per_kwh=p_low, p_high_usd_per_kwh=p_low + 0.06)
            )
            for h in range(2):
                homes.append(dict(round=r, home=2 * g + h, group=g, import_kw=totals[(r, g)] / 2))
        homes.append(dict(round=r, home=99, group=-1, import_kw=50.0))  # an ordinary home
    path.mkdir()
    for name, rows in (("slots", slots), ("groups", groups), ("homes", homes)):
        pd.DataFrame(rows).to_csv(path / f"{name}.csv", index=False)
    return path


def test_leakage_measures_what_the_next_band_tells(tmp_path: Path) -> None:
    leaky = public_output_leakage(_results_folder(tmp_path / "leaky", 60, leak=1.0))
    blind = public_output_leakage(_results_folder(tmp_path / "blind", 60, leak=0.0))
    assert leaky.samples == blind.samples == 3 * 59  # the last round has no next band
    assert leaky.r2_public_outputs > 0.95 and leaky.r2_public_outputs_out_of_sample > 0.9
    assert leaky.r2_public_outputs - leaky.r2_clock_price > 0.4
    # bands unrelated to the dispatch add (in sample) only what extra regressors always add
    assert blind.r2_public_outputs - blind.r2_clock_price < 0.1
    assert blind.r2_public_outputs_out_of_sample < leaky.r2_public_outputs_out_of_sample - 0.5


def test_leakage_command_on_a_run(tmp_path: Path, capsys) -> None:
    folder = _results_folder(tmp_path / "run", 30, leak=1.0)
    assert main(["leakage", str(folder)]) == 0
    assert "with the next round's bands too" in capsys.readouterr().out
    report = json.loads((folder / "leakage.json").read_text())
    assert report["rounds"] == 29 and report["r2_public_outputs"] > report["r2_clock_price"]
    short = _results_folder(tmp_path / "short", 5, leak=1.0)
    with pytest.raises(LeakageError, match="need at least 10"):
        public_output_leakage(short)
