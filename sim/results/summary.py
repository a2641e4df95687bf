"""Summary statistics of a run: per model and tier, after warm-up (definitions: docs/metrics.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sim.results.timeseries import POOL_LEVEL

LATENCIES = ("ttft_s", "tpot_s", "e2e_s", "queue_s")
CI_BATCHES = 10  # batch means by arrival time for the confidence interval of a mean
T_975_9DOF = 2.262157162798205  # Student t 0.975 quantile, 9 degrees of freedom (scipy.stats.t)


def summarize(
    requests: pa.Table, timeseries: pa.Table, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    window_s = duration_s - warmup_s
    cols = {name: requests[name].to_numpy(zero_copy_only=False) for name in requests.column_names}
    measured = cols["arrival_s"] >= warmup_s
    models: dict[str, Any] = {}
    for model in sorted(set(cols["model"][measured])):
        in_model = measured & (cols["model"] == model)
        tiers = {
            tier: _group(cols, in_model & (cols["tier"] == tier), window_s)
            for tier in sorted(set(cols["tier"][in_model]))
        }
        models[model] = {"all": _group(cols, in_model, window_s), "tiers": tiers}
    traffic = {
        name: _group(cols, measured & (cols["traffic"] == name), window_s)
        for name in sorted(set(cols["traffic"][measured]))
    }
    return {
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "measured_window_s": window_s,
        "requests_total": int(requests.num_rows),
        "requests_measured": int(measured.sum()),
        "models": models,
        "traffic": traffic,
        "pools": _pools(cols, measured, timeseries, warmup_s, duration_s),
    }


def _group(cols: dict[str, np.ndarray], mask: np.ndarray, window_s: float) -> dict[str, Any]:
    status = cols["status"][mask]
    served = mask & (cols["status"] == 200)
    codes, counts = np.unique(status, return_counts=True)
    prompt = int(cols["prompt_tokens"][served].sum())
    cached = int(cols["cached_tokens"][served].sum())
    completion = int(cols["completion_tokens"][served].sum())
    group: dict[str, Any] = {
        "requests": int(mask.sum()),
        "by_status": {str(int(c)): int(n) for c, n in zip(codes, counts, strict=True)},
        "throughput": {
            "requests_per_s": float(served.sum() / window_s),
            "prompt_tokens_per_s": prompt / window_s,
            "completion_tokens_per_s": completion / window_s,
        },
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "cache_hit_ratio": cached / prompt if prompt else 0.0,
        "completion_tokens": completion,
        "preemptions": int(cols["preemptions"][mask].sum()),
    }
    arrival = cols["arrival_s"][served]
    for name in LATENCIES:
        group[name] = latency_stats(cols[name][served], arrival)
    return group


def latency_stats(values: np.ndarray, arrival_s: np.ndarray) -> dict[str, Any]:
    """Percentiles and the mean with a 95% batch-means confidence interval (NaNs dropped)."""
    keep = ~np.isnan(values)
    values, arrival_s = values[keep], arrival_s[keep]
    if values.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    result = {
        "count": int(values.size),
        "mean": float(values.mean()),
        "mean_ci95": mean_ci95(values[np.argsort(arrival_s, kind="stable")]),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }
    return result


def mean_ci95(ordered: np.ndarray) -> list[float] | None:
    """95% interval for the mean from `batches` consecutive batch means (Student t).

    Consecutive requests are correlated; means of long batches are nearly independent.
    """
    if ordered.size < CI_BATCHES * 2:
        return None
    means = np.array([b.mean() for b in np.array_split(ordered, CI_BATCHES)])
    half = T_975_9DOF * means.std(ddof=1) / np.sqrt(CI_BATCHES)
    return [float(means.mean() - half), float(means.mean() + half)]


def _pools(
    req: dict[str, np.ndarray],
    measured_requests: np.ndarray,
    timeseries: pa.Table,
    warmup_s: float,
    duration_s: float,
) -> list[dict[str, Any]]:
    if timeseries.num_rows == 0:
        return []
    cols = {
        name: timeseries[name].to_numpy(zero_copy_only=False) for name in timeseries.column_names
    }
    pool_rows = cols["replica"] == POOL_LEVEL
    measured = pool_rows & (cols["t_s"] > warmup_s) & (cols["t_s"] <= duration_s + 1e-9)
    result = []
    for model, pool in dict.fromkeys(
        zip(cols["model"][pool_rows], cols["pool"][pool_rows], strict=True)
    ):
        mask = measured & (cols["model"] == model) & (cols["pool"] == pool)
        replica_rows = (
            (cols["replica"] != POOL_LEVEL) & (cols["model"] == model) & (cols["pool"] == pool)
        )
        total = cols["kv_blocks_total"][mask]
        used = cols["kv_blocks_used"][mask]
        served = (
            measured_requests
            & (req["status"] == 200)
            & (req["model"] == model)
            & (req["pool"] == pool)
        )
        hit_by_replica = []
        for replica in sorted(set(cols["replica"][replica_rows])):
            on = served & (req["replica"] == replica)
            prompt = int(req["prompt_tokens"][on].sum())
            hit_by_replica.append(float(req["cached_tokens"][on].sum() / prompt) if prompt else 0.0)
        result.append(
            {
                "model": str(model),
                "pool": str(pool),
                "replicas": len(set(cols["replica"][replica_rows])),
                "utilisation": float(cols["busy_fraction"][mask].mean()) if mask.any() else 0.0,
                "kv_use_mean": float((used / total).mean())
                if mask.any() and total.min() > 0
                else 0.0,
                "running_mean": float(cols["running"][mask].mean()) if mask.any() else 0.0,
                "waiting_mean": float(cols["waiting"][mask].mean()) if mask.any() else 0.0,
                "cache_hit_ratio_by_replica": hit_by_replica,
                "requests_by_replica": [
                    int((served & (req["replica"] == r)).sum())
                    for r in sorted(set(cols["replica"][replica_rows]))
                ],
            }
        )
    return result
