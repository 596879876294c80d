"""Plots of a results folder (PNG, labeled with units).

dispatch.png   per group: revealed range [Lmin, Lmax], dispatched cap and actual import (kW)
prices.png     lambda and each group's price band over the day ($/kWh)
voltages.png   per phase: min/max AC voltage over the feeder with the DSO's band (pu)
loading.png    highest line-phase and transformer loading per slot with their ratings (%)
dlmp.png       DLMP components, mean over sites (energy, loss, congestion, voltage; $/kWh)
gas.png        gas per slot by call type (thousand gas)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from sim.results.writer import ResultsError, load_results  # noqa: E402

PHASE_COLORS = {"a": "tab:red", "b": "tab:green", "c": "tab:blue"}


def _hours(tables: dict[str, pd.DataFrame]) -> pd.Series:
    slots = tables["slots"].set_index("round")
    return slots["hour"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_dispatch(tables, out: Path) -> Path:
    groups, homes, hours = tables["groups"], tables["homes"], _hours(tables)
    smart = homes[homes.smart]
    actual = smart.groupby(["round", "group"])[["cap_kw", "import_kw"]].sum().reset_index()
    ids = sorted(groups.group.unique())
    cols = min(3, len(ids))
    rows = -(-len(ids) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False, sharex=True
    )
    for ax, group in zip(axes.flat, ids, strict=False):
        g = groups[groups.group == group].set_index("round")
        a = actual[actual.group == group].set_index("round")
        x = hours.loc[g.index]
        ax.fill_between(
            x, g.lmin_kw, g.lmax_kw, step="post", alpha=0.25, label="range [Lmin, Lmax]"
        )
        ax.step(hours.loc[a.index], a.cap_kw, where="post", label="cap (dispatch)")
        ax.step(hours.loc[a.index], a.import_kw, where="post", ls="--", label="actual import")
        ax.set_title(f"group {group}")
        ax.set_ylabel("kW")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(ids) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("hour of day")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Dispatch per aggregation group")
    return _save(fig, out / "dispatch.png")


def plot_prices(tables, out: Path) -> Path:
    groups, slots, hours = tables["groups"], tables["slots"], _hours(tables)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.step(slots.hour, slots["lambda"], where="post", color="k")
    ax1.set_ylabel("λ (-)")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_title("Dispatch factor λ")
    ax1.grid(alpha=0.3)
    for group, g in groups.groupby("group"):
        x = hours.loc[g["round"]]
        ax2.fill_between(x, g.p_low_usd_per_kwh, g.p_high_usd_per_kwh, step="post", alpha=0.2)
        ax2.step(x, g.p_low_usd_per_kwh, where="post", lw=0.8, label=f"group {group}")
    ax2.step(
        slots.hour,
        slots.energy_price_usd_per_kwh,
        where="post",
        color="k",
        ls=":",
        label="substation energy price",
    )
    ax2.set_ylabel("$/kWh")
    ax2.set_xlabel("hour of day")
    ax2.set_title("Price band [p_low, p_high] per group")
    ax2.legend(fontsize=7, ncol=3)
    ax2.grid(alpha=0.3)
    return _save(fig, out / "prices.png")


def plot_voltages(tables, out: Path, band: tuple[float, float]) -> Path:
    slots = tables["slots"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for ph, color in PHASE_COLORS.items():
        ax.fill_between(
            slots.hour,
            slots[f"v_min_{ph}_pu"],
            slots[f"v_max_{ph}_pu"],
            step="post",
            color=color,
            alpha=0.25,
            label=f"phase {ph}",
        )
    for limit in band:
        ax.axhline(limit, color="k", ls="--", lw=1)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("voltage (pu)")
    ax.set_title("Voltage envelope per phase after dispatch (dashed: DSO band)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out / "voltages.png")


def plot_loading(tables, out: Path, line_rating_pct: float) -> Path:
    slots = tables["slots"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(slots.hour, slots.max_line_loading_pct, where="post", label="highest line-phase")
    ax.step(slots.hour, slots.max_trafo_loading_pct, where="post", label="transformer")
    ax.axhline(line_rating_pct, color="k", ls="--", lw=1, label="line rating held to")
    if line_rating_pct != 100.0:
        ax.axhline(100.0, color="k", ls=":", lw=1, label="transformer rating")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("loading (% of rating)")
    ax.set_title("Line and transformer loading after dispatch (dashed: limit)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out / "loading.png")


def plot_dlmp(tables, out: Path) -> Path:
    dlmp, hours = tables["dlmp"], _hours(tables)
    parts = ["energy", "loss", "congestion", "voltage"]
    mean = dlmp.groupby("round")[[f"{p}_usd_per_kwh" for p in parts] + ["dlmp_usd_per_kwh"]].mean()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = hours.loc[mean.index]
    for p in parts:
        ax.step(x, mean[f"{p}_usd_per_kwh"], where="post", label=p)
    ax.step(x, mean.dlmp_usd_per_kwh, where="post", color="k", lw=2, label="DLMP")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("$/kWh")
    ax.set_title("DLMP and its components (mean over home sites)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out / "dlmp.png")


def plot_gas(tables, out: Path) -> Path:
    tx = tables["transactions"].dropna(subset=["round"])
    per = tx.pivot_table(index="round", columns="label", values="gas_used", aggfunc="sum").fillna(0)
    hours = _hours(tables)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = None
    x = hours.reindex(per.index).to_numpy()
    width = (x[1] - x[0]) * 0.9 if len(x) > 1 else 0.2
    for label in per.columns:
        ax.bar(
            x,
            per[label] / 1000,
            width=width,
            bottom=bottom,
            align="edge",
            label=label.removeprefix("private."),
        )
        bottom = per[label] / 1000 if bottom is None else bottom + per[label] / 1000
    ax.set_xlabel("hour of day")
    ax.set_ylabel("gas per slot (thousand)")
    ax.set_title("Gas per slot by call")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out / "gas.png")


def plot_results(out_dir: str | Path) -> list[Path]:
    """Write every plot of a results folder into it; returns the files."""
    out_dir = Path(out_dir)
    tables = load_results(out_dir)
    if tables["slots"].empty:
        raise ResultsError(f"{out_dir} has no finished slot to plot")
    scenario = yaml.safe_load((out_dir / "scenario.yaml").read_text())
    band = (scenario["dso"]["v_min_pu"], scenario["dso"]["v_max_pu"])
    line_rating_pct = 100.0 * float(scenario["dso"].get("ampacity_factor", 1.0))
    return [
        plot_dispatch(tables, out_dir),
        plot_prices(tables, out_dir),
        plot_voltages(tables, out_dir, band),
        plot_loading(tables, out_dir, line_rating_pct),
        plot_dlmp(tables, out_dir),
        plot_gas(tables, out_dir),
    ]
