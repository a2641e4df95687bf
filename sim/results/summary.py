"""Summary statistics of a run: per model and tier, per traffic source and per replica, after
warm-up (definitions: docs/metrics.md)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from sim.results.cache_hits import hit_ratio_by_turn
from sim.results.outcomes import COLUMNS as OUTCOME_COLUMNS
from sim.results.outcomes import logical_outcomes
from sim.results.timeseries import POOL_LEVEL
from sim.status import STATUS_OK

LATENCIES = ("ttft_s", "tpot_s", "e2e_s", "queue_s")
PERCENTILES = (50, 90, 99)
PERCENTILE_FRACTIONS = tuple(p / 100 for p in PERCENTILES)  # as np.percentile divides
CI_BATCHES = 20  # batch means by arrival time for the confidence interval of a mean
T_975_19DOF = 2.093024054408263  # Student t 0.975 quantile, 19 degrees of freedom (scipy.stats.t)
MSER_BATCH = 5  # MSER-5: the warm-up is chosen among multiples of 5 values
MIN_CI_VALUES = 100  # fewer values after the MSER-5 cut: no interval
LABELS = ("model", "tier", "traffic", "pool")
COUNTS = ("prompt_tokens", "cached_tokens", "completion_tokens", "turn", "preemptions")
# The request columns `summarize` reads.
COLUMNS = tuple(
    dict.fromkeys(
        [
            *("arrival_s", "finished_s", "status", "replica", "cost_usd", "account"),
            *LABELS,
            *LATENCIES,
            *COUNTS,
            *OUTCOME_COLUMNS,
        ]
    )
)


def summarize(
    requests: pa.Table,
    timeseries: pa.Table,
    warmup_s: float,
    duration_s: float,
    arrivals_end_s: float | None = None,
) -> dict[str, Any]:
    """Rates and utilisation are over the window in which arrivals happened: from warm-up to
    `arrivals_end_s` when every source stopped early (max_requests), else to `duration_s`."""
    end_s = duration_s if arrivals_end_s is None else min(arrivals_end_s, duration_s)
    if end_s <= warmup_s:
        end_s = duration_s  # nothing arrived after warm-up: zero rates over the planned window
    window_s = end_s - warmup_s
    cols = _numbers(requests)
    # Every row's place in arrival order (ties in record order): each group orders its rows by
    # arrival from these with a sort of integers, not a stable sort of floats of its own.
    cols["arrival_order"] = np.argsort(cols["arrival_s"], kind="stable")
    cols["arrival_rank"] = np.empty_like(cols["arrival_order"])
    cols["arrival_rank"][cols["arrival_order"]] = np.arange(requests.num_rows)
    labels = {name: _labels(requests[name]) for name in LABELS}
    arrival, finished = cols["arrival_s"], cols["finished_s"]
    measured = np.flatnonzero((arrival >= warmup_s) & (arrival < duration_s))
    served = cols["status"] == STATUS_OK
    rows = {
        # Groups are named from every request, measured or not: the summary keeps its shape
        # when nothing (or nothing of a tier) arrived after warm-up.
        "every": np.arange(requests.num_rows),
        "measured": measured,
        "completed": np.flatnonzero(served & (finished >= warmup_s) & (finished < end_s)),
    }
    models: dict[str, Any] = {}
    for model, in_model in _split_rows(labels["model"], rows).items():
        tiers = {
            tier: _group(cols, of_tier, window_s)
            for tier, of_tier in _split_rows(labels["tier"], in_model).items()
        }
        models[model] = {"all": _group(cols, in_model, window_s), "tiers": tiers}
    traffic = {
        name: _group(cols, of_traffic, window_s)
        for name, of_traffic in _split_rows(labels["traffic"], rows).items()
    }
    return {
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "arrivals_end_s": end_s,
        "measured_window_s": window_s,
        "requests_total": int(requests.num_rows),
        "requests_measured": int(measured.size),
        "models": models,
        "traffic": traffic,
        "pools": _pools(cols, labels, measured, timeseries, warmup_s, end_s),
        "revenue": _revenue(requests, cols),
        "accounts": logical_outcomes(requests, warmup_s, duration_s),
    }


def _numbers(table: pa.Table) -> dict[str, np.ndarray]:
    return {
        name: table[name].to_numpy()
        for name in table.column_names
        if pa.types.is_integer(table[name].type) or pa.types.is_floating(table[name].type)
    }


def _labels(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A string column as integer codes and the names they stand for (fast to group on)."""
    encoded = column.combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def _split(
    labels: tuple[np.ndarray, list[str]], rows: np.ndarray, among: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """`rows` grouped by label, names sorted, rows in their original order within a group.

    The names are those present in `among` (default `rows`), so a group measured empty (every
    request of a tier arrived during warm-up) is still reported, with zero counts.
    """
    codes, names = labels
    present = np.flatnonzero(np.bincount(codes[rows if among is None else among], minlength=1))
    of_code = _rows_by_value(codes, rows, present)
    return dict(sorted(zip((names[c] for c in present), of_code, strict=True)))


def _split_rows(
    labels: tuple[np.ndarray, list[str]], rows: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Each row set of `rows` split by label, the names taken from `rows["every"]`."""
    parts = {kind: _split(labels, of_kind, rows["every"]) for kind, of_kind in rows.items()}
    return {name: {kind: parts[kind][name] for kind in rows} for name in parts["every"]}


def _group(
    cols: dict[str, np.ndarray], rows: dict[str, np.ndarray], window_s: float
) -> dict[str, Any]:
    """Statistics of the requests that arrived in the window (`measured`), and the served
    throughput of those that finished in it (`completed`)."""
    measured, completed = rows["measured"], rows["completed"]
    status = cols["status"][measured]
    served = measured[status == STATUS_OK]
    codes, counts = np.unique(status, return_counts=True)
    prompt = int(cols["prompt_tokens"][served].sum())
    cached = int(cols["cached_tokens"][served].sum())
    completion = int(cols["completion_tokens"][served].sum())
    done_prompt = int(cols["prompt_tokens"][completed].sum())
    done_completion = int(cols["completion_tokens"][completed].sum())
    group: dict[str, Any] = {
        "requests": int(measured.size),
        "by_status": {str(int(c)): int(n) for c, n in zip(codes, counts, strict=True)},
        "throughput": {
            "requests_per_s": float(served.size / window_s),
            "prompt_tokens_per_s": prompt / window_s,
            "completion_tokens_per_s": completion / window_s,
            "completed_requests_per_s": float(completed.size / window_s),
            "completed_prompt_tokens_per_s": done_prompt / window_s,
            "completed_completion_tokens_per_s": done_completion / window_s,
        },
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "cache_hit_ratio": cached / prompt if prompt else 0.0,
        # Session traffic only: {"1": ..., "20+": ...}; empty without sessions.
        "cache_hit_ratio_by_turn": hit_ratio_by_turn(
            cols["turn"][served], cols["prompt_tokens"][served], cols["cached_tokens"][served]
        ),
        "completion_tokens": completion,
        "preemptions": int(cols["preemptions"][measured].sum()),
        "revenue_usd": float(cols["cost_usd"][served].sum()),
    }
    by_arrival = cols["arrival_order"][np.sort(cols["arrival_rank"][served])]
    for name in LATENCIES:
        group[name] = latency_stats(cols[name][served], cols[name][by_arrival])
    return group


def _revenue(requests: pa.Table, cols: dict[str, np.ndarray]) -> dict[str, Any]:
    """What the run billed, warm-up included (a bill covers every served attempt): in all and
    per account, model id and tier."""
    served = cols["status"] == 200
    keys = ("account", "model", "tier")
    table = pa.table({k: requests[k] for k in keys} | {"cost_usd": cols["cost_usd"] * served})
    table = table.append_column("served", pa.array(served))
    grouped = table.group_by(list(keys), use_threads=False).aggregate(
        [("cost_usd", "sum"), ("served", "sum")]
    )
    rows = sorted(
        zip(*(grouped[k].to_pylist() for k in (*keys, "served_sum", "cost_usd_sum")), strict=True)
    )
    return {
        "total_usd": float(cols["cost_usd"][served].sum()),
        "by_account": [
            {"account": a, "model": m, "tier": t, "served": int(n), "revenue_usd": float(usd)}
            for a, m, t, n, usd in rows
        ],
    }


def latency_stats(values: np.ndarray, by_arrival: np.ndarray) -> dict[str, Any]:
    """Percentiles and the mean with a 95% batch-means confidence interval (NaNs dropped).
    `by_arrival`: the same values ordered by arrival time (ties in the order of `values`)."""
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return {"count": 0}
    ascending = np.sort(kept)
    p50, p90, p99 = percentiles_of_sorted(ascending)
    return {
        "count": int(kept.size),
        "mean": float(kept.mean()),
        "mean_ci95": mean_ci95(by_arrival[~np.isnan(by_arrival)]),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": float(ascending[-1]),
    }


def percentiles_of_sorted(ordered: np.ndarray) -> list[float]:
    """np.percentile(ordered, PERCENTILES), bit for bit (its 'linear' method, steps and all), of
    values already sorted: without its partition and checks, which cost most of summarize on
    thousands of traffic groups."""
    last = ordered.size - 1
    result = []
    for fraction in PERCENTILE_FRACTIONS:
        virtual = last * fraction
        # numpy's neighbours; past the last value both are the last (index -1)
        below = math.floor(virtual) if virtual < last else -1
        above = below + 1 if virtual < last else -1
        gamma = virtual - below
        low, high = float(ordered[below]), float(ordered[above])
        diff = high - low
        result.append(high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma)
    return result


def mean_ci95(ordered: np.ndarray) -> list[float] | None:
    """Approximate 95% interval for the mean: CI_BATCHES consecutive batch means (Student t)
    after a further warm-up chosen by MSER-5.

    Consecutive requests are correlated; means of long batches nearly independent. Measured on
    M/M/1 runs of a few thousand requests its coverage is a few points under 95% (short batches
    of a skewed latency), so it is labelled approximate: decisions take the between-replication
    intervals of compare, sweep and plan.
    """
    ordered = ordered[mser5_cut(ordered) :]
    if ordered.size < MIN_CI_VALUES:
        return None
    means = batch_means(ordered)
    centre = means.mean()
    half = T_975_19DOF * means.std(ddof=1) / np.sqrt(CI_BATCHES)
    return [float(centre - half), float(centre + half)]


def batch_means(values: np.ndarray) -> np.ndarray:
    """The means of np.array_split(values, CI_BATCHES), bit for bit: its longer batches (first)
    as the rows of one array, then its shorter ones, each mean one call instead of one a batch."""
    size, longer = divmod(values.size, CI_BATCHES)
    cut = longer * (size + 1)
    head = values[:cut].reshape(longer, size + 1).mean(axis=1)
    tail = values[cut:].reshape(CI_BATCHES - longer, size).mean(axis=1)
    return np.concatenate([head, tail])


def mser5_cut(ordered: np.ndarray) -> int:
    """How many leading values MSER-5 drops: the cut d (a multiple of 5, in the first half) that
    minimises the squared standard error of the mean of what is left, computed on means of 5."""
    n = ordered.size // MSER_BATCH
    if n < 2:
        return 0
    batches = ordered[: n * MSER_BATCH].reshape(n, MSER_BATCH).mean(axis=1)
    tail_sum = batches[::-1].cumsum()[::-1]
    tail_squares = (batches**2)[::-1].cumsum()[::-1]
    cuts = n // 2 + 1  # 0 to n // 2 batches
    left = n - np.arange(cuts)
    mean = tail_sum[:cuts] / left
    variance = np.maximum(tail_squares[:cuts] / left - mean**2, 0.0)
    return int((variance / left).argmin()) * MSER_BATCH


def _pools(
    req: dict[str, np.ndarray],
    labels: dict[str, tuple[np.ndarray, list[str]]],
    measured_requests: np.ndarray,
    timeseries: pa.Table,
    warmup_s: float,
    duration_s: float,
) -> list[dict[str, Any]]:
    if timeseries.num_rows == 0:
        return []
    ts = _numbers(timeseries)
    ts_model, ts_pool = (timeseries[n].to_numpy(zero_copy_only=False) for n in ("model", "pool"))
    served = measured_requests[req["status"][measured_requests] == STATUS_OK]
    by_model = _split(labels["model"], served)
    pool_rows = ts["replica"] == POOL_LEVEL
    in_window = (ts["t_s"] > warmup_s) & (ts["t_s"] <= duration_s + 1e-9)
    measured = pool_rows & in_window
    result = []
    for model, pool in dict.fromkeys(zip(ts_model[pool_rows], ts_pool[pool_rows], strict=True)):
        of_pool = (ts_model == model) & (ts_pool == pool)
        mask = measured & of_pool
        replicas = sorted(set(ts["replica"][~pool_rows & of_pool]))
        busy = [ts["busy_fraction"][in_window & of_pool & (ts["replica"] == r)] for r in replicas]
        in_pool = _split(labels["pool"], by_model.get(str(model), np.array([], dtype=np.int64)))
        rows = in_pool.get(str(pool), np.array([], dtype=np.int64))
        on_replica = _rows_by_value(req["replica"], rows, replicas)
        total = ts["kv_blocks_total"][mask]
        used = ts["kv_blocks_used"][mask]
        result.append(
            {
                "model": str(model),
                "pool": str(pool),
                "replicas": len(replicas),
                "utilisation": float(ts["busy_fraction"][mask].mean()) if mask.any() else 0.0,
                "utilisation_by_replica": [float(b.mean()) if b.size else 0.0 for b in busy],
                "kv_use_mean": float((used / total).mean())
                if mask.any() and total.min() > 0
                else 0.0,
                "running_mean": float(ts["running"][mask].mean()) if mask.any() else 0.0,
                "waiting_mean": float(ts["waiting"][mask].mean()) if mask.any() else 0.0,
                "cache_hit_ratio_by_replica": [_hit_ratio(req, r) for r in on_replica],
                "requests_by_replica": [int(r.size) for r in on_replica],
                **generated_tps_per_request(req["tpot_s"][rows]),
                **_fleet(ts, of_pool & pool_rows, warmup_s, duration_s),
            }
        )
    return result


def generated_tps_per_request(tpot_s: np.ndarray) -> dict[str, float | None]:
    """Generated tokens per second each served request saw after its first token (1 / its
    TPOT), the speed a Fast pool sells (PLATFORM.md: 100+ per request). Requests of one output
    token, and slot models (no decode steps), have none: null when no request has one."""
    with np.errstate(invalid="ignore"):
        tps = 1.0 / tpot_s[tpot_s > 0]  # NaN (one token) compares false
    return {
        "generated_tps_per_request_p50": float(np.median(tps)) if tps.size else None,
        "generated_tps_per_request_mean": float(tps.mean()) if tps.size else None,
    }


def tps_per_request_text(pool: dict[str, Any]) -> str:
    """A pool's generated tokens/s per request for tables: "p50 / mean", "-" if none."""
    p50 = pool.get("generated_tps_per_request_p50")
    mean = pool.get("generated_tps_per_request_mean")
    return "-" if p50 is None or mean is None else f"{p50:.1f} / {mean:.1f}"


def _fleet(
    ts: dict[str, np.ndarray], rows: np.ndarray, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    """Replicas over the window: serving (fewest, most, time-average from the samples) and the
    replica-hours held (starting, serving or draining), from the cumulative held seconds,
    interpolated linearly between samples."""
    t_s = np.concatenate([[0.0], ts["t_s"][rows]])
    held_s = np.concatenate([[0.0], ts["held_s"][rows]])
    window = (t_s > warmup_s) & (t_s <= duration_s + 1e-9)
    serving = ts["replicas_serving"][rows][window[1:]]
    held = np.interp([warmup_s, min(duration_s, t_s[-1])], t_s, held_s)
    window_s = duration_s - warmup_s
    return {
        "replicas_serving_min": int(serving.min()) if serving.size else 0,
        "replicas_serving_max": int(serving.max()) if serving.size else 0,
        "replicas_serving_mean": float(serving.mean()) if serving.size else 0.0,
        "replicas_held_mean": float((held[1] - held[0]) / window_s),
        "replica_hours": float((held[1] - held[0]) / 3600),
    }


def _rows_by_value(
    values: np.ndarray, rows: np.ndarray, wanted: list[int] | np.ndarray
) -> list[np.ndarray]:
    """For each of `wanted`, the `rows` whose value it is, in their order (one sort, not a scan
    of every row per value)."""
    order = rows[np.argsort(values[rows], kind="stable")]
    ordered = values[order]
    starts = np.searchsorted(ordered, wanted, side="left")
    ends = np.searchsorted(ordered, wanted, side="right")
    return [order[start:end] for start, end in zip(starts, ends, strict=True)]


def _hit_ratio(req: dict[str, np.ndarray], rows: np.ndarray) -> float:
    prompt = int(req["prompt_tokens"][rows].sum())
    return float(req["cached_tokens"][rows].sum() / prompt) if prompt else 0.0
