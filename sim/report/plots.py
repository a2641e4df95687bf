"""The standard plots of one run (PNG, labelled axes with units). Reads tables, writes files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa

from sim.results.timeseries import POOL_LEVEL
from sim.status import STATUS_OK


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def write_plots(
    requests: pa.Table, timeseries: pa.Table, warmup_s: float, out_dir: Path
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    req = _columns(requests)
    ts = _columns(timeseries)
    return [
        latency_cdf(req, warmup_s, out_dir / "latency_cdf.png"),
        latency_over_time(req, ts, out_dir / "latency_load_over_time.png"),
        kv_cache_over_time(ts, out_dir / "kv_cache_over_time.png"),
    ]


def latency_cdf(req: dict[str, np.ndarray], warmup_s: float, path: Path) -> Path:
    served = (req["status"] == STATUS_OK) & (req["arrival_s"] >= warmup_s)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, metric, label in zip(
        axes,
        ("ttft_s", "tpot_s", "e2e_s"),
        ("time to first token (s)", "time per output token (s)", "end-to-end latency (s)"),
        strict=True,
    ):
        for tier in sorted(set(req["tier"][served])):
            values = req[metric][served & (req["tier"] == tier)]
            values = np.sort(values[~np.isnan(values)])
            if values.size:
                ax.plot(values, np.arange(1, values.size + 1) / values.size, label=tier)
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        _legend(ax, title="tier")
    fig.suptitle("Latency CDF per tier (after warm-up)")
    return _save(fig, path)


def latency_over_time(req: dict[str, np.ndarray], ts: dict[str, np.ndarray], path: Path) -> Path:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
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
    top.grid(True, alpha=0.3)
    _legend(top)
    top.set_title("Latency by arrival time, and load")
    pools = ts["replica"] == POOL_LEVEL
    for model, pool in dict.fromkeys(zip(ts["model"][pools], ts["pool"][pools], strict=True)):
        rows = pools & (ts["model"] == model) & (ts["pool"] == pool)
        bottom.plot(ts["t_s"][rows], ts["running"][rows], label=f"{model}/{pool} running")
        bottom.plot(ts["t_s"][rows], ts["waiting"][rows], "--", label=f"{model}/{pool} waiting")
    bottom.set_xlabel("simulated time (s)")
    bottom.set_ylabel("requests (whole pool)")
    bottom.grid(True, alpha=0.3)
    _legend(bottom)
    return _save(fig, path)


def kv_cache_over_time(ts: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(12, 4.5))
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
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title("KV-cache use over time")
    return _save(fig, path)


def _legend(ax: plt.Axes, **options: str) -> None:
    """A legend only where something was drawn (a run may measure no requests)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
