"""Plots of the provider's economics: revenue against fleet cost over time, and cost and revenue
per million tokens per model. Functions return Figures; `economics_figures` names them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from sim.report.style import legend, new_figure, plot_function
from sim.results.economics import TOKEN_KINDS
from sim.results.timeseries import POOL_LEVEL
from sim.status import STATUS_OK

HOUR_S = 3600.0
COLUMNS = ("status", "finished_s", "cost_usd")  # the request columns read


@plot_function
def revenue_and_cost_over_time(
    requests: pa.Table,
    timeseries: pa.Table,
    usd_per_replica_hour: Mapping[tuple[str, str], float],
    warmup_s: float = 0.0,
) -> Figure:
    """Revenue (served attempts, by the time they ended) and fleet cost (replicas held, at their
    GPUs' hourly price) per sampling interval in USD per hour, and both accumulated."""
    fig, (rate, total) = new_figure(2, 1, figsize=(12, 7), sharex=True)
    pools = timeseries.filter(pc.equal(timeseries["replica"], POOL_LEVEL))
    t_s = np.unique(np.concatenate([[0.0], pools["t_s"].to_numpy()]))
    cost = np.zeros_like(t_s)
    model = pools["model"].to_numpy(zero_copy_only=False)
    pool = pools["pool"].to_numpy(zero_copy_only=False)
    for key in dict.fromkeys(zip(model, pool, strict=True)):
        of_pool = (model == key[0]) & (pool == key[1])
        held_s = np.interp(
            t_s,
            np.concatenate([[0.0], pools["t_s"].to_numpy()[of_pool]]),
            np.concatenate([[0.0], pools["held_s"].to_numpy()[of_pool]]),
        )
        cost += held_s / HOUR_S * usd_per_replica_hour[key]
    served = requests.filter(pc.equal(requests["status"], STATUS_OK))
    order = np.argsort(served["finished_s"].to_numpy(), kind="stable")
    finished = served["finished_s"].to_numpy()[order]
    earned = np.concatenate([[0.0], np.cumsum(served["cost_usd"].to_numpy()[order])])
    revenue = earned[np.searchsorted(finished, t_s, side="right")]
    if t_s.size > 1:
        width_h = np.diff(t_s) / HOUR_S
        for name, cumulative in (("revenue", revenue), ("fleet cost", cost)):
            rate.stairs(np.diff(cumulative) / width_h, t_s, label=name)
            total.plot(t_s, cumulative, label=name)
        total.plot(t_s, revenue - cost, ":", color="grey", label="margin")
        for ax in (rate, total):
            if warmup_s > 0:
                ax.axvline(warmup_s, color="grey", linewidth=0.8, linestyle="--")
    rate.set_title("Revenue and fleet cost (dashed line: end of warm-up)")
    total.set_ylabel("since the start (USD)")
    total.set_xlabel("simulated time (s)")
    rate.set_ylabel("rate (USD per hour)")
    legend(rate)
    legend(total)
    return fig


@plot_function
def cost_per_mtok_by_model(economics: Mapping[str, Any]) -> Figure:
    """Per model: fleet cost (bars) and revenue (markers) per million tokens of each kind, over
    the measured window; a kind with no tokens is left out."""
    fig, ax = new_figure(figsize=(10, 4.5))
    models = sorted(economics["models"])
    width = 0.8 / len(TOKEN_KINDS)
    for i, kind in enumerate(TOKEN_KINDS):
        x = np.arange(len(models)) + (i - (len(TOKEN_KINDS) - 1) / 2) * width
        cost = [economics["models"][m]["cost_usd_per_mtok"][kind] for m in models]
        revenue = [economics["models"][m]["revenue_usd_per_mtok"][kind] for m in models]
        has = np.array([c is not None for c in cost])
        if not has.any():
            continue
        bars = ax.bar(x[has], [c for c in cost if c is not None], width, label=f"cost, {kind}")
        ax.plot(
            x[has],
            [r for r in revenue if r is not None],
            "D",
            color=bars.patches[0].get_facecolor(),
            markeredgecolor="black",
            label=f"revenue, {kind}",
        )
    ax.set_xticks(np.arange(len(models)), models)
    ax.set_xlabel("model id (measured window)")
    ax.set_ylabel("price or cost (USD per million tokens)")
    ax.set_title("Fleet cost (bars) and revenue (diamonds) per million tokens of each kind")
    legend(ax, ncols=2)
    return fig


def economics_figures(
    requests: pa.Table,
    timeseries: pa.Table,
    usd_per_replica_hour: Mapping[tuple[str, str], float],
    economics: Mapping[str, Any],
    warmup_s: float,
) -> dict[str, Figure]:
    """The economics plots of a run, by file stem (none when the run sampled no pool)."""
    if not economics["pools"]:
        return {}
    return {
        "revenue_and_cost_over_time": revenue_and_cost_over_time(
            requests, timeseries, usd_per_replica_hour, warmup_s
        ),
        "cost_per_mtok_by_model": cost_per_mtok_by_model(economics),
    }
