"""The standard plots of one run. Each function returns a matplotlib Figure (labelled axes with
units, capsim's style); the caller saves it (`write_plots`) or embeds it (the HTML report)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from sim.report.style import legend, new_figure, plot_function, save
from sim.results.cache_hits import (
    STATED_HIT_RATIO_BY_TURN,
    TURN_CAP,
    hit_ratio_by_turn,
    turn_label,
)
from sim.results.timeseries import POOL_LEVEL
from sim.status import STATUS_OK

Columns = dict[str, np.ndarray]
# The request columns the run's plots read.
COLUMNS = ("status", "arrival_s", "tier", "ttft_s", "tpot_s", "e2e_s")


def _columns(table: pa.Table) -> Columns:
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def run_figures(
    requests: pa.Table,
    timeseries: pa.Table,
    warmup_s: float,
    turn_runs: Mapping[str, pa.Table] | None = None,
) -> dict[str, Figure]:
    """Every standard plot of a run, by file stem; with `turn_runs` (cache_hits tables of the
    run's session traffic, by label), also the hit ratio by turn."""
    plots: dict[str, Callable[[], Figure]] = {
        "latency_cdf": lambda: latency_cdf(requests, warmup_s),
        "latency_load_over_time": lambda: latency_over_time(requests, timeseries),
        "kv_cache_over_time": lambda: kv_cache_over_time(timeseries),
    }
    if turn_runs:
        plots["cache_hit_by_turn"] = lambda: cache_hit_by_turn(turn_runs, warmup_s)
    return {name: draw() for name, draw in plots.items()}


def write_plots(
    requests: pa.Table,
    timeseries: pa.Table,
    warmup_s: float,
    out_dir: Path,
    turn_runs: Mapping[str, pa.Table] | None = None,
) -> list[Path]:
    """The run's standard plots as PNG files in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = run_figures(requests, timeseries, warmup_s, turn_runs)
    return [save(fig, out_dir / f"{name}.png") for name, fig in figures.items()]


@plot_function
def latency_cdf(requests: pa.Table, warmup_s: float) -> Figure:
    """TTFT, TPOT and end-to-end latency CDFs per tier, served requests after warm-up."""
    req = _columns(requests)
    served = (req["status"] == STATUS_OK) & (req["arrival_s"] >= warmup_s)
    fig, axes = new_figure(1, 3, figsize=(15, 4.5))
    for ax, metric, label in zip(
        axes,
        ("ttft_s", "tpot_s", "e2e_s"),
        ("time to first token (s)", "time per output token (s)", "end-to-end latency (s)"),
        strict=True,
    ):
        positive = False
        for tier in sorted(set(req["tier"][served])):
            values = req[metric][served & (req["tier"] == tier)]
            values = np.sort(values[~np.isnan(values)])
            if values.size:
                ax.plot(values, np.arange(1, values.size + 1) / values.size, label=tier)
                positive |= bool((values > 0).any())
        ax.set_xlabel(label)
        ax.set_ylabel("share of requests (fraction)")
        if positive:  # slot models have no time per output token: all zeros
            ax.set_xscale("log")
        legend(ax, title="tier")
    fig.suptitle("Latency CDF per tier (after warm-up)")
    return fig


@plot_function
def latency_over_time(requests: pa.Table, timeseries: pa.Table) -> Figure:
    """TTFT p50 and p99 per tier by arrival time, above the pool's running and waiting counts."""
    req, ts = _columns(requests), _columns(timeseries)
    fig, (top, bottom) = new_figure(2, 1, figsize=(12, 7), sharex=True)
    served = req["status"] == STATUS_OK
    if served.any():
        edges = np.linspace(0, max(req["arrival_s"][served].max(), 1e-9), 61)
        for tier in sorted(set(req["tier"][served])):
            rows = served & (req["tier"] == tier)
            which = np.clip(np.digitize(req["arrival_s"][rows], edges) - 1, 0, len(edges) - 2)
            ttft = req["ttft_s"][rows]
            bins = [b for b in range(len(edges) - 1) if (which == b).any()]
            mids = [(edges[b] + edges[b + 1]) / 2 for b in bins]
            for q, style in ((50, "-"), (99, ":")):
                values = [np.percentile(ttft[which == b], q) for b in bins]
                top.plot(mids, values, style, label=f"{tier} p{q}")
    top.set_ylabel("time to first token (s)")
    top.set_yscale("log")
    legend(top)
    top.set_title("Latency by arrival time, and load")
    pools = ts["replica"] == POOL_LEVEL
    for model, pool in dict.fromkeys(zip(ts["model"][pools], ts["pool"][pools], strict=True)):
        rows = pools & (ts["model"] == model) & (ts["pool"] == pool)
        bottom.plot(ts["t_s"][rows], ts["running"][rows], label=f"{model}/{pool} running")
        bottom.plot(ts["t_s"][rows], ts["waiting"][rows], "--", label=f"{model}/{pool} waiting")
    bottom.set_xlabel("simulated time (s)")
    bottom.set_ylabel("requests in the pool (count)")
    legend(bottom)
    return fig


@plot_function
def kv_cache_over_time(timeseries: pa.Table) -> Figure:
    """KV-cache blocks held by running requests (mean and fullest replica) and by the cache."""
    ts = _columns(timeseries)
    fig, ax = new_figure(figsize=(12, 4.5))
    replicas = ts["replica"] != POOL_LEVEL
    for model, pool in dict.fromkeys(zip(ts["model"][replicas], ts["pool"][replicas], strict=True)):
        rows = (
            replicas & (ts["model"] == model) & (ts["pool"] == pool) & (ts["kv_blocks_total"] > 0)
        )
        if not rows.any():
            continue
        t = ts["t_s"][rows]
        total = ts["kv_blocks_total"][rows]
        share = ts["kv_blocks_used"][rows] / total
        cached = ts["kv_blocks_cached"][rows] / total
        times = np.unique(t)
        mean = np.array([share[t == x].mean() for x in times])
        peak = np.array([share[t == x].max() for x in times])
        held = np.array([(share + cached)[t == x].mean() for x in times])
        ax.plot(times, 100 * mean, label=f"{model}/{pool} running requests, mean of replicas")
        ax.plot(times, 100 * peak, ":", label=f"{model}/{pool} running requests, fullest replica")
        ax.plot(times, 100 * held, "--", label=f"{model}/{pool} running + prefix cache, mean")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("KV-cache blocks (% of capacity)")
    ax.set_ylim(0, 105)
    legend(ax)
    ax.set_title("KV-cache use over time")
    return fig


@plot_function
def cache_hit_by_turn(runs: Mapping[str, pa.Table], warmup_s: float = 0.0) -> Figure:
    """Token-weighted cache hit ratio per session turn, one line per run (e.g. one per routing
    policy), from `cache_hits.parquet` tables; the intervals that end after `warmup_s` count.
    Crosses mark what the service states for affinity (77% at turn 8, 95% at 20+)."""
    fig, ax = new_figure(figsize=(10, 4.5))
    for label, table in runs.items():
        hits = _columns(table)
        rows = hits["t_s"] > warmup_s
        by_turn = hit_ratio_by_turn(
            hits["turn"][rows], hits["prompt_tokens"][rows], hits["cached_tokens"][rows]
        )
        if by_turn:
            turns = [int(name.rstrip("+")) for name in by_turn]
            ax.plot(turns, [100 * r for r in by_turn.values()], "o-", label=label)
    stated = sorted(STATED_HIT_RATIO_BY_TURN.items())
    ax.plot(
        [t for t, _ in stated],
        [100 * r for _, r in stated],
        "kx",
        markersize=10,
        label="stated by the service",
    )
    ax.set_xticks(range(1, TURN_CAP + 1), [turn_label(t) for t in range(1, TURN_CAP + 1)])
    ax.set_xlabel("session turn (number)")
    ax.set_ylabel("cached prompt tokens (%)")
    ax.set_ylim(0, 102)
    legend(ax)
    ax.set_title("Prompt-cache hit ratio by turn")
    return fig
