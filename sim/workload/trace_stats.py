"""`capsim trace-stats`: what a trace looks like before it is replayed.

The infinite-cache hit ratio is the one a single replica with unlimited KV memory reaches when
it serves the trace one request at a time, so the simulator can be checked against it exactly:
requests are taken in arrival order; request r's prompt of P tokens has P // b full blocks of b
tokens (ids re-chunked from the trace's blocks with `rechunk_prompts`); L is the length of the
longest leading run of those blocks that all appeared in earlier requests; r's cached tokens are
min(L, (P - 1) // b) * b (whole blocks, never the last prompt token, as the replica matches);
then all of r's full blocks are cached. Hit ratio = sum of cached tokens / sum of prompt tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from sim.errors import InputError
from sim.workload.traces import (
    Trace,
    TraceConfig,
    guess_format,
    load_trace,
    rechunk_prompts,
    renumbered_block_ids,
)

_CHUNK_BLOCKS = 1 << 20  # blocks handled at once: bounds memory whatever the block size


def trace_stats(trace: Trace, block_size: int | None = None) -> dict[str, Any]:
    """Counts, rates, length percentiles, burstiness and, for traces with block ids, the
    unique blocks and infinite-cache hit ratio at `block_size` (default: the trace's own)."""
    gaps_s = np.diff(trace.arrival_s)
    stats: dict[str, Any] = {
        "path": trace.path,
        "requests": len(trace),
        "skipped_lines": trace.skipped_lines,
        "span_s": trace.span_s,
        "rate_per_s": (len(trace) - 1) / trace.span_s if trace.span_s > 0 else None,
        "interarrival_cv": float(gaps_s.std() / gaps_s.mean()) if gaps_s.sum() > 0 else None,
        "prompt_tokens": _percentiles(trace.prompt_tokens),
        "output_tokens": _percentiles(trace.output_tokens),
        "block_size": None,
        "unique_blocks": None,
        "infinite_cache_hit_ratio": None,
    }
    if trace.block_ids is not None and trace.block_size is not None:
        size = block_size or trace.block_size
        unique, ratio = _infinite_cache(trace, size)
        stats.update(block_size=size, unique_blocks=unique, infinite_cache_hit_ratio=ratio)
    return stats


def infinite_cache_hit_ratio(trace: Trace, block_size: int) -> float:
    """Cached / prompt tokens of one infinite cache (the rule in the module docstring)."""
    return _infinite_cache(trace, block_size)[1]


def _infinite_cache(trace: Trace, block_size: int) -> tuple[int, float]:
    """(distinct full blocks, hit ratio). Vectorised over a chunk of requests at a time, with
    the blocks of earlier chunks in a bitmap over the id space (dense, as ids are renumbered)."""
    assert trace.block_ids is not None and trace.block_size is not None
    trace_ids = renumbered_block_ids(trace.block_ids)
    distinct = 1 + max((max(ids, default=-1) for ids in trace_ids), default=-1)
    seen = np.zeros(distinct * -(-trace.block_size // block_size), dtype=bool)
    prompts = trace.prompt_tokens
    full = prompts // block_size
    leading = np.zeros_like(full)
    for lo, hi in _chunks(full, _CHUNK_BLOCKS):
        ids, request = rechunk_prompts(
            trace_ids[lo:hi], prompts[lo:hi], trace.block_size, block_size
        )
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        before = seen[ids] | (request[first][inverse.ravel()] < request)
        seen[ids] = True
        leading[lo:hi] = _leading_true(before, request, full[lo:hi])
    cached = np.minimum(leading, (prompts - 1) // block_size) * block_size
    return int(seen.sum()), float(cached.sum() / prompts.sum())


def _chunks(counts: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """Consecutive index ranges whose counts sum to about `size` (at least one index each)."""
    cumulative = np.cumsum(counts)
    lo = 0
    while lo < counts.size:
        target = cumulative[lo] - counts[lo] + size
        hi = max(int(np.searchsorted(cumulative, target, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def _leading_true(flags: np.ndarray, segment: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per segment (`counts[s]` consecutive flags, `segment` naming each flag's), the number of
    leading True flags."""
    starts = np.cumsum(counts) - counts
    position = np.arange(flags.size) - starts[segment]
    first_false = np.where(flags, np.iinfo(np.int64).max, position)
    leading = np.zeros_like(counts)
    some = counts > 0
    if some.any():
        firsts = np.minimum.reduceat(first_false, starts[some])
        leading[some] = np.minimum(firsts, counts[some])
    return leading


def _percentiles(values: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": float(values.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def trace_stats_command(
    path: Path, fmt: str | None, block_size: int | None, on_bad_line: str = "error"
) -> dict[str, Any]:
    """Stats of a trace file; the format is guessed from the file when `fmt` is None."""
    if block_size is not None and block_size < 1:
        raise InputError(f"--block-size must be >= 1, got {block_size}")
    if on_bad_line not in ("error", "skip"):
        raise InputError(f"--on-bad-line {on_bad_line!r}: allowed: error, skip")
    fields = {"path": str(path), "format": fmt or guess_format(path), "on_bad_line": on_bad_line}
    try:
        config = TraceConfig.model_validate(fields)
    except ValidationError:
        raise InputError(f"--format {fmt!r}: allowed: mooncake, azure, csv") from None
    return trace_stats(load_trace(path, config), block_size)


def format_trace_stats(stats: dict[str, Any]) -> str:
    """A readable table, units in the labels."""
    skipped = stats["skipped_lines"]
    lines = [
        f"trace                      {stats['path']}",
        f"requests                   {stats['requests']:,}"
        + (f" ({skipped:,} bad lines skipped)" if skipped else ""),
        f"span (s)                   {stats['span_s']:,.1f}",
        f"rate (requests/s)          {_number(stats['rate_per_s'], '.3f')}",
        f"inter-arrival CV           {_number(stats['interarrival_cv'], '.2f')}"
        "  (burstiness; 1 = Poisson)",
        "",
        f"{'length (tokens)':<20} {'mean':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}",
    ]
    for name, label in (("prompt_tokens", "prompt"), ("output_tokens", "output")):
        p = stats[name]
        lines.append(
            f"{label:<20} {p['mean']:>9,.0f} {p['p50']:>9,.0f} {p['p90']:>9,.0f} "
            f"{p['p99']:>9,.0f} {p['max']:>9,.0f}"
        )
    lines.append("")
    if stats["infinite_cache_hit_ratio"] is None:
        lines.append("prefix cache               no block ids in this format")
    else:
        lines += [
            f"block size (tokens)        {stats['block_size']}",
            f"unique blocks              {stats['unique_blocks']:,}",
            f"infinite-cache hit ratio   {stats['infinite_cache_hit_ratio']:.1%} of prompt tokens",
        ]
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
