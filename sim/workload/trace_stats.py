"""`capsim trace-stats`: what a trace looks like before it is replayed.

The hit ratio an infinite single cache would reach is computed with the simulator's own rules
(`chains.trace_runs` at the given block size; a hit never covers the last prompt token, and is
whole blocks), so a replica with unlimited KV memory that serves the trace one request at a
time reproduces it exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.workload.chains import block_ids, trace_runs
from sim.workload.traces import Trace, TraceConfig, guess_format, load_trace


def trace_stats(trace: Trace, block_size: int | None = None) -> dict[str, Any]:
    gaps = np.diff(trace.arrival_s)
    stats: dict[str, Any] = {
        "path": trace.path,
        "requests": len(trace),
        "skipped_lines": trace.skipped_lines,
        "span_s": trace.span_s,
        "rate_per_s": (len(trace) - 1) / trace.span_s if trace.span_s > 0 else None,
        "interarrival_cv": float(gaps.std() / gaps.mean())
        if gaps.size and gaps.mean() > 0
        else None,
        "prompt_tokens": _percentiles(trace.prompt_tokens),
        "output_tokens": _percentiles(trace.output_tokens),
    }
    if trace.block_ids is not None and trace.block_size is not None:
        size = block_size or trace.block_size
        stats["block_size"] = size
        stats["unique_blocks"] = len({i for ids in trace.block_ids for i in ids})
        stats["infinite_cache_hit_ratio"] = infinite_cache_hit_ratio(trace, size)
    return stats


def infinite_cache_hit_ratio(trace: Trace, block_size: int) -> float:
    """Cached / prompt tokens when every block of every earlier request is still cached."""
    assert trace.block_ids is not None and trace.block_size is not None
    seen: set[tuple[int, int]] = set()
    cached = 0
    for ids, prompt in zip(trace.block_ids, trace.prompt_tokens.tolist(), strict=True):
        blocks = block_ids(trace_runs("", ids, trace.block_size, prompt, block_size))
        hit = 0
        for block in blocks[: (prompt - 1) // block_size]:
            if block not in seen:
                break
            hit += 1
        cached += hit * block_size
        seen.update(blocks)
    return cached / int(trace.prompt_tokens.sum())


def _percentiles(values: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": float(values.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def trace_stats_command(path: Path, fmt: str | None, block_size: int | None) -> dict[str, Any]:
    config = TraceConfig.model_validate({"path": str(path), "format": fmt or guess_format(path)})
    return trace_stats(load_trace(path, config), block_size)


def format_trace_stats(stats: dict[str, Any]) -> str:
    lines = [
        f"trace                {stats['path']}",
        f"requests             {stats['requests']:,}"
        + (f" ({stats['skipped_lines']:,} bad lines skipped)" if stats["skipped_lines"] else ""),
        f"span                 {stats['span_s']:,.1f} s",
        f"rate                 {stats['rate_per_s'] or 0:,.3f} requests/s",
        f"burstiness           {stats['interarrival_cv'] or 0:.2f} "
        "(CV of inter-arrival times; 1 = Poisson)",
        "",
        f"{'tokens':<20} {'mean':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}",
    ]
    for name in ("prompt_tokens", "output_tokens"):
        p = stats[name]
        lines.append(
            f"{name:<20} {p['mean']:>9,.0f} {p['p50']:>9,.0f} {p['p90']:>9,.0f} "
            f"{p['p99']:>9,.0f} {p['max']:>9,.0f}"
        )
    if "infinite_cache_hit_ratio" in stats:
        lines += [
            "",
            f"unique blocks        {stats['unique_blocks']:,} (of the trace's own size)",
            f"infinite-cache hits  {stats['infinite_cache_hit_ratio']:.1%} of prompt tokens "
            f"(one cache, {stats['block_size']}-token blocks)",
        ]
    return "\n".join(lines)
