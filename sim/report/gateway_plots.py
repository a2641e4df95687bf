"""Plots of the front door: each account's limits and its use of them, and revenue over time.
Functions take tables and return Figures; `gateway_figures` names them for saving."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from sim.gateway.limits.base import LIMIT_KINDS
from sim.report.style import legend, new_figure, plot_function
from sim.status import STATUS_IN_FLIGHT, STATUS_OK

MOST_ACCOUNTS_PLOTTED = 12  # the accounts with the most attempts, when a run has more
COLUMNS = ("status", "arrival_s", "finished_s", "tier", "cost_usd")  # the request columns read


@plot_function
def account_limits(limits: pa.Table, account: str) -> Figure:
    """The three limits of one account (per model id) and the tokens it used against them, in
    tokens per second over each sampling interval, with the intervals that had 429s marked."""
    rows = limits.filter(pc.equal(limits["account"], account))
    fig, axes = new_figure(3, 1, figsize=(12, 8), sharex=True)
    models = sorted(set(rows["model"].to_pylist()))
    for ax, kind in zip(axes, LIMIT_KINDS, strict=True):
        for model in models:
            of_model = rows.filter(pc.equal(rows["model"], model))
            t = of_model["t_s"].to_numpy()
            interval = np.diff(t, prepend=0.0)
            interval[0] = interval[1] if t.size > 1 else max(t[0], 1e-9)
            limit = of_model[f"limit_{kind}_tps"].to_numpy()
            used = of_model[f"{kind}_tokens"].to_numpy() / interval
            (line,) = ax.plot(t, used, ":", label=f"{model} used")
            if np.isfinite(limit).any():
                ax.plot(t, limit, "-", color=line.get_color(), label=f"{model} limit")
            refused = of_model["rate_limited"].to_numpy() > 0
            if refused.any():
                ax.plot(t[refused], used[refused], "x", color="#d62728", label=f"{model} 429s")
        ax.set_ylabel(f"{kind.replace('_', ' ')} (tokens/s)")
        legend(ax)
    axes[-1].set_xlabel("simulated time (s)")
    axes[0].set_title(f"Account {account}: limits and use (x: intervals with 429s)")
    return fig


@plot_function
def revenue_over_time(requests: pa.Table, bins: int = 60) -> Figure:
    """Revenue per tier, USD per hour, by the time served attempts ended."""
    fig, ax = new_figure(figsize=(12, 4.5))
    served = requests.filter(pc.equal(requests["status"], STATUS_OK))
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
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("revenue (USD per hour)")
    ax.set_title("Revenue over time")
    legend(ax, title="tier")
    return fig


@plot_function
def outcomes_over_time(requests: pa.Table, bins: int = 60) -> Figure:
    """Attempts per second by outcome (200, 429, 503, 402, ...) per tier, by arrival time: when
    the front door refused, whom, and how retries came back."""
    tiers = sorted(pc.unique(requests["tier"]).to_pylist()) or ["standard"]
    fig, axes = new_figure(len(tiers), 1, figsize=(12, 3 * len(tiers) + 1), sharex=True)
    axes = np.atleast_1d(axes).reshape(-1, 1)
    arrival = requests["arrival_s"].to_numpy()
    status = requests["status"].to_numpy()
    tier_of = requests["tier"].to_numpy(zero_copy_only=False)
    edges = np.linspace(0.0, max(float(arrival.max()) if arrival.size else 1.0, 1e-9), bins + 1)
    width_s = edges[1] - edges[0]
    centres = (edges[:-1] + edges[1:]) / 2
    for ax, tier in zip(axes[:, 0], tiers, strict=True):
        of_tier = tier_of == tier
        for code in sorted(set(status[of_tier].tolist())):
            counts, _ = np.histogram(arrival[of_tier & (status == code)], edges)
            label = "no answer" if code == STATUS_IN_FLIGHT else str(code)
            ax.plot(centres, counts / width_s, label=label)
        ax.set_ylabel(f"{tier} (attempts/s)")
        legend(ax, title="status")
    axes[-1, 0].set_xlabel("simulated time (s)")
    axes[0, 0].set_title("Outcomes of attempts over time, per tier (by arrival)")
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


def gateway_figures(requests: pa.Table, limits: pa.Table) -> dict[str, Figure]:
    """Revenue and attempt outcomes over time, and the limits of each plotted account, by
    file stem."""
    figures = {
        "revenue_over_time": revenue_over_time(requests),
        "outcomes_over_time": outcomes_over_time(requests),
    }
    for account in accounts_to_plot(limits):
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", account)
        figures[f"limits_{slug}"] = account_limits(limits, account)
    return figures
