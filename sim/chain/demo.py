"""A short on-chain run of the protocol (Algorithm 1) on the private and the seed contract.

Homes submit synthetic demand bounds; every survivor sends its recovery word (its self-mask
removed); one home drops out of one round and the survivors also cancel its pairwise masks.
Writes tables of transactions and aggregates and a gas plot, and checks that the DSO's
unmasked sums equal the true sums.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.chain.baseline import SeedBaselineClient
from sim.chain.connection import Chain
from sim.chain.deployment import setup_market

DEADLINE_S = 300


@dataclass
class DemoResult:
    aggregates: pd.DataFrame  # round, group, true and unmasked sums (W), contributors
    transactions: pd.DataFrame  # one row per transaction (label, gas, latency, round)

    @property
    def exact(self) -> bool:
        aggregate = self.aggregates
        return bool(
            (
                (aggregate.lower_w == aggregate.true_lower_w)
                & (aggregate.upper_w == aggregate.true_upper_w)
            ).all()
        )


def run_protocol_demo(
    chain: Chain,
    rounds: int = 4,
    groups: Sequence[int] = (6, 6),
    dropout_round: int | None = 2,
    seed: int = 1,
) -> DemoResult:
    """Run `rounds` rounds with one group per entry of `groups` (its number of homes)."""
    rng = random.Random(seed)
    group_of = [g for g, n in enumerate(groups) for _ in range(n)]
    market = setup_market(chain, group_of)
    dso_account = market.dso.account
    baseline = SeedBaselineClient.deploy(chain, dso_account)
    baseline.claim_dso(dso_account)
    for home in market.homes:
        baseline.claim_user(dso_account, home.address)

    rows = []
    for round_ in range(1, rounds + 1):
        p_low, p_high = 0.06 + 0.01 * round_, 0.25
        deadline = chain.now() + DEADLINE_S
        for group in range(len(groups)):
            market.dso.open_round(round_, group, p_low, p_high, deadline)
        baseline.submit_price(dso_account, p_high, p_low, round_=round_)
        lowers = [rng.randrange(-3000, 4000) for _ in market.homes]
        bounds = [(lower, lower + rng.randrange(0, 3000)) for lower in lowers]
        dropped = 0 if round_ == dropout_round else None
        for i, home in enumerate(market.homes):
            home.read_price(round_)
            if i != dropped:
                home.submit_range(round_, *bounds[i])
            baseline.submit_range(home.account, *bounds[i], round_=round_)
        if dropped is not None:  # the survivors are fixed at the deadline
            chain.advance(DEADLINE_S + 1)
        # every survivor removes its self-mask (and cancels its masks with the dropped home)
        for i, home in enumerate(market.homes):
            if i != dropped and home.needs_recovery(round_):
                home.send_recovery(round_)
        for group in range(len(groups)):
            aggregate = market.dso.read_aggregate(round_, group)
            members = [i for i, g in enumerate(group_of) if g == group and i != dropped]
            rows.append(
                {
                    "round": round_,
                    "group": group,
                    "contributors": aggregate.contributors,
                    "lower_w": aggregate.lower_w,
                    "upper_w": aggregate.upper_w,
                    "true_lower_w": sum(bounds[i][0] for i in members),
                    "true_upper_w": sum(bounds[i][1] for i in members),
                }
            )
        market.dso.post_lambda(round_, 0.5)
        baseline.get_agg(dso_account, round_=round_)
        baseline.submit_lambda(dso_account, 0.5, round_=round_)
        baseline.clear(dso_account, round_=round_)
        chain.advance(DEADLINE_S + market.contract.recovery_period_s + 1)
    transactions = pd.DataFrame([r.as_dict() for r in chain.records])
    return DemoResult(pd.DataFrame(rows), transactions)


def write_demo(result: DemoResult, out_dir: Path) -> list[Path]:
    """Tables and the gas plot of a demo run; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "aggregates.csv", out_dir / "transactions.csv", out_dir / "gas.png"]
    result.aggregates.to_csv(written[0], index=False)
    result.transactions.to_csv(written[1], index=False)

    tx = result.transactions
    tx = tx[~tx.label.str.endswith(".deploy")]
    gas = tx.groupby("label").gas_used.mean().sort_values()
    colors = ["tab:blue" if label.startswith("private") else "tab:gray" for label in gas.index]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.barh(gas.index, gas.values / 1000, color=colors)
    ax.set_xlabel("mean gas per call (thousand gas)")
    ax.set_title("Gas per call: private aggregation (blue) vs seed baseline (gray)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(written[2], dpi=150)
    plt.close(fig)
    return written
