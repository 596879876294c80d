"""The occupancy-inference experiment: the same homes and days on both contracts.

The protocol is driven directly, without mosaik and without the grid (the grid does not
change what homes submit): the scenario's fleet and aggregation groups are built the way a
co-simulation run builds them (`sim.market.setup`), then every slot of whole days runs

1. the DSO opens the round of every group with a price band: the scenario's energy price of
   the hour +/- BAND_FRACTION (the DSO's default band half-width; no network pricing);
2. every HEMS home reads its band from the chain, computes [Lmin, Lmax] and submits them to
   BOTH contracts: masked to the private contract (`HomeClient`) and as the plaintext string
   "lower,upper" to the seed paper's contract (one instance per group, the paper's "bus");
   a home drops out of a round (submits to neither) with `dropout_probability` (default 5 %);
3. every survivor of the private contract sends its recovery word (after the deadline when
   its group had a dropout); the DSO unmasks the private group sums; the seed contracts sum on
   chain (getAgg);
4. the DSO posts one fixed lambda (default 0.5) to both, the seed contracts are cleared;
5. every home reads lambda and is dispatched at lambda*Lmax + (1-lambda)*Lmin, so its state
   (battery, temperatures) moves on as in a run.

Then the chain observer reads the chain, the DSO view is its unmasked sums, and the attacker
is trained on the first days and scored on the rest. Ground truth: a home is occupied in a
slot when at least one occupant is active (at home and awake) during the slot, from the
richardsonpy occupancy behind the homes' load (`fleet.occupancy > 0`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.chain.baseline import SeedBaselineClient
from sim.chain.connection import Chain
from sim.chain.deployment import Market
from sim.chain.units import kw_to_w
from sim.errors import BlockhemsError
from sim.hems import HEMSFleet
from sim.market.setup import aggregation_groups, build_fleet, connect_without_node, open_market
from sim.privacy import DEFAULT_DAYS, DEFAULT_DROPOUT, DEFAULT_LAMBDA
from sim.privacy.attacker import AttackResult, Split, attack_prior, attack_series
from sim.privacy.observers import (
    ChainCapture,
    ChainObserver,
    ChainReader,
    ContractKind,
    Timetable,
    chain_group_series,
    chain_home_series,
    dso_series,
)
from sim.protocol import dispatch_cap
from sim.scenario import Scenario, build_scenario_feeder, parse_scenario, resolve_scenario

BAND_FRACTION = 0.25  # half-width of the price band, share of the energy price (sim.dso default)
OCCUPIED_ABOVE_ACTIVE = 0.0  # occupied: mean active occupants in the slot above this


class ExperimentError(BlockhemsError, ValueError):
    """The experiment cannot run as asked; the message says why."""


def whole_days(scenario: Scenario, days: int) -> Scenario:
    """The scenario over `days` whole days from midnight of its start date (validated)."""
    if days < 2:
        raise ExperimentError(f"days must be >= 2 (train on some days, score others), got {days}")
    data = scenario.model_dump(mode="json")
    data["time"].update(start_hour=0, hours=None, days=days)
    return parse_scenario(data, f"scenario {scenario.name}")


@dataclass
class ProtocolRun:
    """The fleet and the chain after the protocol ran over the scenario's slots."""

    scenario: Scenario
    fleet: HEMSFleet
    groups: dict[int, list[int]]  # group -> fleet indices of its HEMS homes
    chain: Chain
    market: Market
    baselines: dict[int, SeedBaselineClient]  # one seed instance per group
    timetable: Timetable
    home_ids: list[int]  # fleet indices of the homes on chain, sorted
    addresses: list[str]  # their accounts, same order
    group_of_home: list[int]  # their groups, same order
    bounds_w: np.ndarray  # (homes, slots, 2) each home's bounds (for checks only)
    submitted: np.ndarray  # (homes, slots) whether the home submitted (did not drop out)
    dso_sums_w: dict[tuple[int, int], tuple[int, int]]  # (group, slot) -> DSO's unmasked sums
    lam: float
    dropout_probability: float
    observer: ChainObserver  # followed the chain from before the deployments
    setup_s: float = 0.0
    protocol_s: float = 0.0


def run_protocol(
    scenario: Scenario,
    lam: float = DEFAULT_LAMBDA,
    chain: Chain | None = None,
    progress: Callable[[int, int], None] | None = None,
    dropout_probability: float = DEFAULT_DROPOUT,
) -> ProtocolRun:
    """Build the scenario's fleet and groups, deploy both contracts, run every slot.

    Each home drops out of each round with `dropout_probability` (drawn from homes.seed).
    `progress(slot, n_slots)` is called after each slot.
    """
    if not 0.0 <= lam <= 1.0:
        raise ExperimentError(f"lambda must be in [0, 1], got {lam}")
    if not 0.0 <= dropout_probability < 1.0:
        raise ExperimentError(f"dropout probability must be in [0, 1), got {dropout_probability}")
    if scenario.time.first_slot != 0:
        raise ExperimentError("the privacy experiment runs whole days: use whole_days(scenario)")
    start = time.perf_counter()
    feeder = build_scenario_feeder(scenario)
    scenario = resolve_scenario(scenario, feeder)
    fleet = build_fleet(scenario, feeder.n_homes)
    fleet.train()
    groups = aggregation_groups(feeder, fleet.smart, scenario.aggregation.min_group_size)
    chain = chain or connect_without_node(scenario)
    # the eavesdropper follows the chain from the start; it holds only a JSON-RPC reader
    observer = ChainObserver(ChainReader(chain.w3))
    market, clients = open_market(scenario, chain, groups)
    home_ids = sorted(clients)
    group_of = {h: g for g, members in groups.items() for h in members}
    dso_account = market.dso.account
    baselines: dict[int, SeedBaselineClient] = {}
    for group, members in sorted(groups.items()):
        seed_contract = SeedBaselineClient.deploy(chain, dso_account)
        seed_contract.claim_dso(dso_account)
        for h in members:
            seed_contract.claim_user(dso_account, clients[h].address)
        baselines[group] = seed_contract
    t = scenario.time
    timetable = Timetable(chain.now() + 60, t.slot_s, t.n_slots)
    setup_s = time.perf_counter() - start

    start = time.perf_counter()
    bounds_w = np.zeros((len(home_ids), t.n_slots, 2), dtype=np.int64)
    submitted = np.zeros((len(home_ids), t.n_slots), dtype=bool)
    dso_sums: dict[tuple[int, int], tuple[int, int]] = {}
    smart = fleet.smart
    rng = np.random.default_rng(scenario.homes.seed)
    for slot in range(t.n_slots):
        t_slot = timetable.t0_s + slot * t.slot_s
        chain.set_time(t_slot)
        price = scenario.dso.energy_price(slot * t.slot_s // 3600)
        p_low, p_high = price * (1 - BAND_FRACTION), price * (1 + BAND_FRACTION)
        deadline = t_slot + scenario.chain.deadline_s
        for group, seed_contract in baselines.items():
            market.dso.open_round(slot, group, p_low, p_high, deadline)
            seed_contract.submit_price(dso_account, p_high, p_low, round_=slot)
        chain.set_time(t_slot + scenario.chain.block_time_s)
        # each home reads its own group's band from the chain (one read per group)
        band_low = np.full(fleet.n_homes, price)
        band_high = np.full(fleet.n_homes, price)
        for members in groups.values():
            band = clients[members[0]].read_price(slot)
            band_low[members], band_high[members] = band.p_low, band.p_high
        lmin, lmax = fleet.compute_ranges(slot, band_low, band_high)
        lower_w, upper_w = kw_to_w(lmin), kw_to_w(lmax)
        drops = rng.random(len(home_ids)) < dropout_probability
        for k, h in enumerate(home_ids):
            bounds_w[k, slot] = lower_w[h], upper_w[h]
            if drops[k]:  # the home's device misses the round: nothing reaches either contract
                continue
            clients[h].submit_range(slot, lower_w[h], upper_w[h])
            baselines[group_of[h]].submit_range(
                clients[h].account, lower_w[h], upper_w[h], round_=slot
            )
            submitted[k, slot] = True
        if drops.any():  # the survivors are fixed at the deadline
            chain.set_time(deadline + 1)
        states = market.contract.round_states(slot, sorted(groups))
        for k, h in enumerate(home_ids):
            if submitted[k, slot] and clients[h].needs_recovery(slot, states[group_of[h]]):
                clients[h].send_recovery(slot)
        for group, seed_contract in baselines.items():
            # a group with fewer survivors than the minimum failed: it reveals nothing
            if states[group].submissions.count >= market.contract.min_group_size:
                aggregate = market.dso.read_aggregate(slot, group)
                if not aggregate.complete:
                    raise ExperimentError(f"round {slot} of group {group} did not complete")
                dso_sums[(group, slot)] = (aggregate.lower_w, aggregate.upper_w)
            seed_contract.get_agg(dso_account, round_=slot)
            seed_contract.submit_lambda(dso_account, lam, round_=slot)
            seed_contract.clear(dso_account, round_=slot)
        market.dso.post_lambda(slot, lam)
        lam_read = clients[home_ids[0]].read_lambda(slot)
        cap = np.where(smart, dispatch_cap(lam_read, np.stack([lmax, lmin], axis=-1)), np.inf)
        fleet.dispatch(slot, cap)
        if progress is not None:
            progress(slot, t.n_slots)
    return ProtocolRun(
        scenario=scenario,
        fleet=fleet,
        groups=groups,
        chain=chain,
        market=market,
        baselines=baselines,
        timetable=timetable,
        home_ids=home_ids,
        addresses=[clients[h].address for h in home_ids],
        group_of_home=[group_of[h] for h in home_ids],
        bounds_w=bounds_w,
        submitted=submitted,
        dso_sums_w=dso_sums,
        lam=lam,
        dropout_probability=dropout_probability,
        observer=observer,
        setup_s=setup_s,
        protocol_s=time.perf_counter() - start,
    )


def watched_contracts(run: ProtocolRun) -> dict[str, ContractKind]:
    """The contracts a chain observer watches: public addresses and kinds."""
    contracts: dict[str, ContractKind] = {run.market.contract.address: "private"}
    contracts.update({c.address: "baseline" for c in run.baselines.values()})
    return contracts


def occupied_labels(run: ProtocolRun) -> np.ndarray:
    """Ground truth (homes on chain, slots): at least one active occupant in the slot."""
    return run.fleet.occupancy[run.home_ids] > OCCUPIED_ABOVE_ACTIVE


@dataclass
class PrivacyReport:
    scenario: str
    days: int
    train_days: int
    slot_s: int
    homes: int
    group_sizes: dict[int, int]
    min_group_size: int
    lam: float
    dropout_probability: float
    results: list[AttackResult]
    checks: dict[str, bool]
    chain_stats: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)

    def result(self, observer: str, contract: str, with_hour: bool = False) -> AttackResult:
        for r in self.results:
            if (r.observer, r.contract, r.with_hour) == (observer, contract, with_hour):
                return r
        raise KeyError((observer, contract, with_hour))

    def verdict(self) -> dict[str, bool]:
        """The issue's claims, checked on the measured figures."""
        base = self.result("chain-home", "baseline").scores
        private = self.result("chain-home", "private").scores
        private_group = self.result("chain-group", "private").scores
        return {
            "seed_contract_chain_observer_beats_chance": base.beats_chance,
            "private_contract_chain_observer_at_chance": private.intervals_cover_chance,
            "private_contract_group_words_at_chance": private_group.intervals_cover_chance,
        }

    def as_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "days": self.days,
            "train_days": self.train_days,
            "scored_days": self.days - self.train_days,
            "slot_s": self.slot_s,
            "homes_attacked": self.homes,
            "group_sizes": {str(g): n for g, n in self.group_sizes.items()},
            "min_group_size": self.min_group_size,
            "label": "occupied = at least one active occupant (at home, awake) in the slot "
            "(richardsonpy, fleet.occupancy > 0)",
            "price_band": f"scenario energy price +/- {BAND_FRACTION:.0%}",
            "lambda": self.lam,
            "dropout_probability": self.dropout_probability,
            "classifier": "L2 logistic regression (Newton), class-balanced, threshold 0.5",
            "verdict": self.verdict(),
            "checks": self.checks,
            "chain": self.chain_stats,
            "timings_s": {k: round(v, 2) for k, v in self.timings_s.items()},
            "results": [r.as_dict() for r in self.results],
        }


def consistency_checks(run: ProtocolRun, capture: ChainCapture) -> dict[str, bool]:
    """What the observers read agrees with what the homes and the DSO did."""
    index = {a.lower(): k for k, a in enumerate(run.addresses)}
    plain_ok, masked_differ = True, True
    for sub in capture.submissions:
        truth = tuple(int(v) for v in run.bounds_w[index[sub.sender], sub.slot])
        if capture.kinds[sub.contract] == "baseline":
            plain_ok &= sub.numbers == truth
        else:
            masked_differ &= sub.numbers != truth
    seed_group = {c.address.lower(): g for g, c in run.baselines.items()}
    seed_sums = {
        (seed_group[address], slot): sums
        for (address, _, slot), sums in capture.group_sums.items()
        if address in seed_group and (seed_group[address], slot) in run.dso_sums_w
    }
    groups = np.asarray(run.group_of_home)
    member_sums = {
        (g, s): tuple(
            int(v) for v in run.bounds_w[(groups == g) & run.submitted[:, s], s].sum(axis=0)
        )
        for (g, s) in run.dso_sums_w
    }
    n_submissions = int(run.submitted.sum())
    dropped = run.submitted.size - n_submissions
    return {
        "seed_plaintext_equals_submitted_bounds": plain_ok,
        "private_words_differ_from_bounds": masked_differ,
        "every_submission_seen_on_both_contracts": len(capture.submissions) == 2 * n_submissions,
        "dropouts_in_the_measured_runs": dropped > 0 or run.dropout_probability == 0.0,
        "dso_unmasked_sums_equal_seed_contract_sums": seed_sums == run.dso_sums_w,
        "dso_unmasked_sums_equal_sum_of_survivors_bounds": member_sums == run.dso_sums_w,
    }


def evaluate(run: ProtocolRun, train_days: int | None = None, seed: int = 0) -> PrivacyReport:
    """Capture the chain, build each observer's view and attack it."""
    t = run.scenario.time
    days = t.days
    train_days = days // 2 if train_days is None else train_days
    split = Split(days, 86_400 // t.slot_s, train_days, t.slot_s)
    start = time.perf_counter()
    capture = run.observer.capture(watched_contracts(run), run.timetable)
    capture_s = time.perf_counter() - start

    start = time.perf_counter()
    occupied = occupied_labels(run)
    views = [
        chain_home_series(capture, "baseline", run.addresses),
        chain_home_series(capture, "private", run.addresses),
        chain_group_series(capture, "baseline", run.addresses),
        chain_group_series(capture, "private", run.addresses),
        dso_series(run.dso_sums_w, run.group_of_home, t.n_slots),
    ]
    groups = np.asarray(run.group_of_home)
    results = [attack_prior(occupied, split, groups, seed=seed)]
    for with_hour in (False, True):
        results += [attack_series(v, occupied, split, with_hour, groups, seed) for v in views]
    attack_s = time.perf_counter() - start
    return PrivacyReport(
        scenario=run.scenario.name,
        days=days,
        train_days=train_days,
        slot_s=t.slot_s,
        homes=len(run.home_ids),
        group_sizes={g: len(m) for g, m in sorted(run.groups.items())},
        min_group_size=run.scenario.aggregation.min_group_size,
        lam=run.lam,
        dropout_probability=run.dropout_probability,
        results=results,
        checks=consistency_checks(run, capture),
        chain_stats={
            "blocks": run.chain.w3.eth.block_number + 1,
            "transactions_to_contracts": capture.transactions,
            "logs": capture.logs,
            "submissions": len(capture.submissions),
            "dropouts": int(run.submitted.size - run.submitted.sum()),
            "storage_reads": capture.storage_reads,
        },
        timings_s={
            "setup": run.setup_s,
            "protocol": run.protocol_s,
            "chain_capture": capture_s,
            "attacks": attack_s,
        },
    )


def run_privacy(
    scenario: Scenario,
    days: int = DEFAULT_DAYS,
    train_days: int | None = None,
    lam: float = DEFAULT_LAMBDA,
    progress: Callable[[int, int], None] | None = None,
    dropout_probability: float = DEFAULT_DROPOUT,
) -> PrivacyReport:
    """The whole experiment on `days` whole days of `scenario`, with dropouts."""
    if days < 2:
        raise ExperimentError(f"days must be >= 2 (train on some days, score others), got {days}")
    train_days = days // 2 if train_days is None else train_days
    if not 1 <= train_days < days:
        raise ExperimentError(
            f"need 1 <= train_days < days to train on some days and score the others; "
            f"got days={days}, train_days={train_days}"
        )
    run = run_protocol(
        whole_days(scenario, days), lam, progress=progress, dropout_probability=dropout_probability
    )
    return evaluate(run, train_days)


def write_report(report: PrivacyReport, out_dir: Path) -> list[Path]:
    """privacy.json (every figure) and privacy.png (ROC curves, balanced accuracy)."""
    from sim.privacy.plots import plot_report

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "privacy.json"
    json_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return [json_path, plot_report(report, out_dir / "privacy.png")]
