"""Plots of a comparison: the variants side by side (latency CDFs of their first replication;
key metrics with their 95% intervals over replications)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from sim.report.style import legend, new_figure, plot_function
from sim.report.sweep_plots import metric_label
from sim.status import STATUS_OK

_LATENCIES = (
    ("ttft_s", "time to first token (s)"),
    ("tpot_s", "time per output token (s)"),
    ("e2e_s", "end-to-end latency (s)"),
)
# Metrics drawn as bars when present (suffixes after "<model>.all."): shares, rates and money.
_BAR_SUFFIXES = ("cache_hit_ratio", "requests_per_s", "_usd", "_share")


@plot_function
def variant_latency_cdfs(requests: dict[str, pa.Table], warmup_s: float) -> Figure:
    """TTFT, TPOT and end-to-end latency CDFs, one line per variant (served, after warm-up)."""
    fig, axes = new_figure(1, 3, figsize=(15, 4.5))
    for ax, (metric, label) in zip(axes, _LATENCIES, strict=True):
        for name, table in requests.items():
            status = table["status"].to_numpy()
            arrival = table["arrival_s"].to_numpy()
            values = table[metric].to_numpy()[(status == STATUS_OK) & (arrival >= warmup_s)]
            values = np.sort(values[~np.isnan(values)])
            if values.size:
                ax.plot(values, np.arange(1, values.size + 1) / values.size, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("share of requests (fraction)")
        if any((np.asarray(line.get_xdata()) > 0).any() for line in ax.get_lines()):
            ax.set_xscale("log")
        legend(ax, title="variant")
    fig.suptitle("Latency CDF per variant (first replication, after warm-up)")
    return fig


@plot_function
def variant_metrics(table: pa.Table, metrics: list[str]) -> Figure:
    """One panel per metric: each variant's mean over replications with its 95% interval."""
    rows = table.to_pylist()
    names = list(dict.fromkeys(r["variant"] for r in rows))
    columns = min(3, len(metrics))
    panels = (len(metrics) + columns - 1) // columns
    fig, grid = new_figure(panels, columns, figsize=(5 * columns, 3.6 * panels))
    axes = list(np.atleast_1d(grid).flat)
    for ax, metric in zip(axes, metrics, strict=False):
        found = {r["variant"]: r for r in rows if r["metric"] == metric}
        means = np.array([found[n]["mean"] if n in found else np.nan for n in names], dtype=float)
        low = np.array([found[n]["ci_low"] if n in found else np.nan for n in names], dtype=float)
        high = np.array([found[n]["ci_high"] if n in found else np.nan for n in names], dtype=float)
        errors = np.nan_to_num(np.vstack([means - low, high - means]))
        positions = np.arange(len(names))
        ax.bar(positions, np.nan_to_num(means), yerr=errors, capsize=4, color="#1f77b4")
        ax.set_xticks(positions, names)
        ax.set_xlabel("variant (name)")
        ax.set_ylabel(metric_label(metric))
    for ax in axes[len(metrics) :]:
        ax.remove()
    fig.suptitle("Variants: mean over replications, bars 95% interval")
    return fig


def compare_figures(
    out_dir: Path, runs: pa.Table, table: pa.Table, warmup_s: float
) -> dict[str, Figure]:
    """The comparison's figures by file name: latency CDFs and the key metrics present."""
    first = runs.filter(pc.equal(runs["replication"], 0)).to_pylist()
    requests = {
        row["variant"]: pq.read_table(
            out_dir / row["run_dir"] / "requests.parquet",
            columns=["status", "arrival_s", *(m for m, _ in _LATENCIES)],
        )
        for row in first
    }
    present = list(dict.fromkeys(table["metric"].to_pylist()))
    metrics = [
        m for m in present if ".all." in m and m.split(".all.", 1)[1].endswith(_BAR_SUFFIXES)
    ]
    figures = {"latency_cdfs": variant_latency_cdfs(requests, warmup_s)}
    if metrics:
        figures["metrics"] = variant_metrics(table, metrics)
    return figures
