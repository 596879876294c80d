"""The privacy figure: ROC curves per observer and contract (top), balanced accuracy and AUC
with their 95 % intervals (bottom)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from sim.privacy.attacker import AttackResult
    from sim.privacy.experiment import PrivacyReport

STYLE = {
    ("chain-home", "baseline"): ("tab:red", "-"),
    ("chain-home", "private"): ("tab:blue", "-"),
    ("chain-group", "baseline"): ("tab:orange", "--"),
    ("chain-group", "private"): ("tab:cyan", "--"),
    ("dso", "private"): ("tab:purple", "-."),
    ("prior", ""): ("0.35", ":"),
}
SHORT = {
    "chain-home": "chain: each home's submissions",
    "chain-group": "chain: group sums",
    "dso": "DSO: unmasked group sums",
}


def short_label(r: AttackResult) -> str:
    if r.observer == "prior":
        return "hour of day only"
    contract = "seed contract" if r.contract == "baseline" else "private contract"
    return f"{SHORT[r.observer]}, {contract}" + (" + hour" if r.with_hour else "")


def plot_report(report: PrivacyReport, path: Path) -> Path:
    fig = plt.figure(figsize=(15, 12))
    grid = fig.add_gridspec(2, 2, height_ratios=(1.0, 0.9))
    for col, with_hour in enumerate((False, True)):
        ax = fig.add_subplot(grid[0, col])
        for r in report.results:
            shown = r.observer == "prior" or r.with_hour == with_hour
            if not shown:
                continue
            color, ls = STYLE[(r.observer, r.contract)]
            name = short_label(r).removesuffix(" + hour")
            ax.plot(
                r.roc_fpr,
                r.roc_tpr,
                color=color,
                ls=ls,
                lw=1.8,
                label=f"{name} ({r.scores.auc:.2f})",
            )
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, alpha=0.5, label="chance (0.50)")
        ax.set_xlabel("false-positive rate (unoccupied slots guessed occupied)")
        ax.set_ylabel("true-positive rate (occupied slots found)")
        ax.set_title(
            "ROC, attacker also knows the hour of day"
            if with_hour
            else "ROC, attacker uses what it observes only"
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", title="observer (AUC)", title_fontsize=8)

    rows = [r for r in report.results if r.observer == "prior"]
    rows += [r for r in report.results if r.observer != "prior" and not r.with_hour]
    rows += [r for r in report.results if r.observer != "prior" and r.with_hour]
    for col, metric in enumerate(("balanced accuracy", "AUC")):
        ax = fig.add_subplot(grid[1, col])
        values, lo, hi, colors = [], [], [], []
        for r in rows:
            s = r.scores
            v, ci = (s.balanced_accuracy, s.balanced_accuracy_ci) if col == 0 else (s.auc, s.auc_ci)
            values.append(v)
            lo.append(v - ci[0])
            hi.append(ci[1] - v)
            colors.append(STYLE[(r.observer, r.contract)][0])
        y = list(range(len(rows)))
        ax.barh(y, [v - 0.5 for v in values], left=0.5, color=colors, alpha=0.8)
        ax.errorbar(values, y, xerr=[lo, hi], fmt="none", ecolor="k", capsize=3, lw=1)
        ax.axvline(0.5, color="k", lw=0.8)
        ax.set_yticks(y, [short_label(r) for r in rows] if col == 0 else [""] * len(rows))
        ax.tick_params(axis="y", labelsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0.4, 1.0)
        ax.set_xlabel(f"{metric} on the scored days, 95 % block-bootstrap interval")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"Occupancy inference, scenario {report.scenario}: {report.homes} homes, "
        f"attacker trained on {report.train_days} days, scored on "
        f"{report.days - report.train_days} days of {report.slot_s // 60}-min slots"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
