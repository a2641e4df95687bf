"""Plots of a plan (plan.parquet): replicas per pool, cost per million tokens and the money per
hour of the planned fleet against load, the money with its 95% band over replications."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.report.style import legend, new_figure, plot_function
from sim.report.sweep_plots import metric_label


def _band(ax: Axes, data: dict[str, list], column: str, x: np.ndarray) -> None:
    """The 95% interval over replications around a money curve, where plan.parquet has it."""
    if f"{column}_low" not in data:
        return
    low, high = (
        np.array([np.nan if v is None else v for v in data[f"{column}_{end}"]], dtype=float)
        for end in ("low", "high")
    )
    ax.fill_between(x, low, high, alpha=0.2, linewidth=0)


@plot_function
def capacity_curve(table: pa.Table, load: str) -> Figure:
    """The fewest replicas of each pool meeting every SLO, against the load."""
    data = table.to_pydict()
    fig, ax = new_figure(figsize=(8, 4.5))
    x = np.array(data[load], dtype=float)
    for column in (c for c in table.column_names if c.startswith("replicas.")):
        y = np.array([np.nan if v is None else v for v in data[column]], dtype=float)
        ax.plot(x, y, marker="o", label=column.removeprefix("replicas."))
    ax.set_xlabel(metric_label(load))
    ax.set_ylabel("replicas (count)")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a replica count has no fractions
    ax.set_title("Capacity: fewest replicas meeting every SLO")
    legend(ax, title="pool")
    return fig


@plot_function
def cost_curve(table: pa.Table, load: str) -> Figure:
    """Cost per million tokens of the planned fleet against the load."""
    data = table.to_pydict()
    fig, ax = new_figure(figsize=(8, 4.5))
    x = np.array(data[load], dtype=float)
    y = np.array(
        [np.nan if v is None else v for v in data["cost_per_million_tokens_usd"]], dtype=float
    )
    ax.plot(x, y, marker="o")
    _band(ax, data, "cost_per_million_tokens_usd", x)
    ax.set_xlabel(metric_label(load))
    ax.set_ylabel("cost per million tokens (USD)")
    ax.set_title("Cost of the planned fleet per million tokens served")
    return fig


@plot_function
def money_curve(table: pa.Table, load: str) -> Figure:
    """What the planned fleet costs and earns per hour against the load; the gap is the margin."""
    data = table.to_pydict()
    fig, ax = new_figure(figsize=(8, 4.5))
    x = np.array(data[load], dtype=float)
    for column, label in (
        ("fleet_cost_per_hour_usd", "fleet cost"),
        ("revenue_per_hour_usd", "revenue"),
        ("margin_per_hour_usd", "margin"),
    ):
        y = np.array([np.nan if v is None else v for v in data[column]], dtype=float)
        ax.plot(x, y, marker="o", label=label, linestyle="--" if label == "margin" else "-")
        _band(ax, data, column, x)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel(metric_label(load))
    ax.set_ylabel("money per hour (USD/h)")
    ax.set_title("Cost, revenue and margin of the planned fleet")
    legend(ax)
    return fig
