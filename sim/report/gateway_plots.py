"""Plots of the front door: each account's limits and its use of them, and revenue over time.
Functions take tables and return Figures; `write_gateway_plots` saves them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from sim.gateway.limits.base import LIMIT_KINDS

MOST_ACCOUNTS_PLOTTED = 12  # the accounts with the most attempts, when a run has more


def account_limits(limits: pa.Table, account: str) -> Figure:
    """The three limits of one account (per model id) and the tokens it used against them, in
    tokens per second over each sampling interval, with the intervals that had 429s marked."""
    rows = limits.filter(pa.compute.equal(limits["account"], account))
    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(3, 1, sharex=True)
    models = sorted(set(rows["model"].to_pylist()))
    for ax, kind in zip(axes, LIMIT_KINDS, strict=True):
        for model in models:
            of_model = rows.filter(pa.compute.equal(rows["model"], model))
            t = of_model["t_s"].to_numpy()
            if t.size == 0:
                continue
            interval = np.diff(t, prepend=t[0] - (t[1] - t[0] if t.size > 1 else 1.0))
            limit = of_model[f"limit_{kind}_tps"].to_numpy()
            used = of_model[f"{kind}_tokens"].to_numpy() / interval
            (line,) = ax.plot(t, limit, "-", label=f"{model} limit")
            ax.plot(t, used, ":", color=line.get_color(), label=f"{model} used")
            refused = of_model["rate_limited"].to_numpy() > 0
            if refused.any():
                ax.plot(t[refused], used[refused], "x", color="red", label=f"{model} 429s")
        ax.set_ylabel(f"{kind.replace('_', ' ')}\ntokens/s")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    axes[-1].set_xlabel("simulated time (s)")
    fig.suptitle(f"Account {account}: limits and use (x: intervals with 429s)")
    fig.tight_layout()
    return fig


def revenue_over_time(requests: pa.Table, bins: int = 60) -> Figure:
    """Revenue per tier, USD per hour, by the time served attempts ended."""
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    served = requests.filter(pa.compute.equal(requests["status"], 200))
    finished = served["finished_s"].to_numpy()
    if finished.size:
        edges = np.linspace(0.0, max(finished.max(), 1e-9), bins + 1)
        width_h = (edges[1] - edges[0]) / 3600.0
        tiers = served["tier"].to_numpy(zero_copy_only=False)
        cost = served["cost_usd"].to_numpy()
        for tier in sorted(set(tiers)):
            of_tier = tiers == tier
            usd, _ = np.histogram(finished[of_tier], edges, weights=cost[of_tier])
            ax.plot((edges[:-1] + edges[1:]) / 2, usd / width_h, label=tier)
        ax.legend(title="tier")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("revenue (USD per hour)")
    ax.grid(True, alpha=0.3)
    ax.set_title("Revenue over time")
    fig.tight_layout()
    return fig


def accounts_to_plot(limits: pa.Table) -> list[str]:
    """Every account, or the MOST_ACCOUNTS_PLOTTED with the most attempts."""
    if limits.num_rows == 0:
        return []
    totals = limits.group_by("account", use_threads=False).aggregate([("attempts", "sum")])
    ranked = sorted(
        zip(totals["attempts_sum"].to_pylist(), totals["account"].to_pylist(), strict=True),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return sorted(account for _, account in ranked[:MOST_ACCOUNTS_PLOTTED])


def write_gateway_plots(requests: pa.Table, limits: pa.Table, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"revenue_over_time.png": revenue_over_time(requests)}
    for account in accounts_to_plot(limits):
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", account)
        figures[f"limits_{slug}.png"] = account_limits(limits, account)
    paths = []
    for name, fig in figures.items():
        fig.savefig(out_dir / name, dpi=110)
        paths.append(out_dir / name)
    return paths
