"""Plots of a sweep table (sweep.parquet): a metric against a swept parameter, the mean over
seeds as a line and its 95% interval over seeds as a band."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from sim.report.style import legend, mean_band, new_figure, plot_function

# Units of names that do not end in one (the others do: `_s`, `_per_s`, `_usd`, `_tps`).
_UNITS = {
    "requests": "count",
    "served": "count",
    "replicas": "count",
    "cache_hit_ratio": "fraction",
    "utilisation": "fraction",
    "kv_use_mean": "fraction",
    "waiting_mean": "requests",
    "generated_tps_per_request_p50": "tokens/s",
    "generated_tps_per_request_mean": "tokens/s",
}
_SUFFIXES = (("_per_s", "1/s"), ("_tps", "tokens/s"), ("_usd", "USD"), ("_s", "s"))


def metric_label(metric: str) -> str:
    """The name with its unit, from the first dotted component that tells it:
    `chat.all.ttft_s.p99 (s)`, `rate_per_s (1/s)`, `replicas (count)`."""
    for part in metric.split("."):
        if part in _UNITS:
            return f"{metric} ({_UNITS[part]})"
        for suffix, unit in _SUFFIXES:
            if part.endswith(suffix):
                return f"{metric} ({unit})"
    return f"{metric} (value)"


def grid_columns(table: pa.Table) -> list[str]:
    """The swept parameters: the columns before `seed`."""
    names = table.column_names
    return names[: names.index("seed")] if "seed" in names else []


@plot_function
def sweep_metric(table: pa.Table, metric: str, x: str | None = None) -> Figure:
    """`metric` against the swept parameter `x` (default the first), one line per combination of
    the other swept parameters; each point is the mean over seeds, the band its 95% interval."""
    grid = grid_columns(table)
    x = x or (grid[0] if grid else "seed")
    others = [name for name in grid if name != x]
    data = table.to_pydict()
    x_values = list(dict.fromkeys(data[x]))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in x_values)
    positions = np.array(x_values if numeric else range(len(x_values)), dtype=float)
    fig, ax = new_figure(figsize=(8, 4.5))
    combos = list(dict.fromkeys(zip(*(data[name] for name in others), strict=True))) or [()]
    for combo in combos:
        rows = [
            i
            for i in range(table.num_rows)
            if all(data[name][i] == value for name, value in zip(others, combo, strict=True))
        ]
        samples = [
            np.array([data[metric][i] for i in rows if data[x][i] == value], dtype=float)
            for value in x_values
        ]
        label = ", ".join(f"{n}={v}" for n, v in zip(others, combo, strict=True)) or metric
        mean_band(ax, positions, samples, label)
    if not numeric:
        ax.set_xticks(positions, [str(v) for v in x_values])
    ax.set_xlabel(metric_label(x))
    ax.set_ylabel(metric_label(metric))
    seeds = len(set(data["seed"])) if "seed" in data else 1
    band = "; band: 95% interval over seeds" if seeds > 1 else ""
    ax.set_title(f"{metric_label(metric)}: mean of {seeds} seed(s){band}")
    legend(ax)
    return fig


def key_metrics(table: pa.Table) -> list[str]:
    """The metrics a sweep report plots: each model's latency p99s, throughput and cache hits."""
    models = [
        n.removesuffix(".all.requests") for n in table.column_names if n.endswith(".all.requests")
    ]
    wanted = ("ttft_s.p99", "tpot_s.p99", "e2e_s.p99", "requests_per_s", "cache_hit_ratio")
    return [
        f"{model}.all.{name}"
        for model, name in itertools.product(models, wanted)
        if f"{model}.all.{name}" in table.column_names
    ]
