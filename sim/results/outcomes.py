"""What became of the logical requests: per account, model id and tier, the attempts made and
each logical request's final outcome (definitions: docs/metrics.md, "Logical requests").

A logical request is measured when its first attempt arrived after warm-up and before arrivals
stopped; all its attempts count, retries during the drain included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sim.status import RETRYABLE, STATUS_OK

COLUMNS = ("logical_id", "attempt", "arrival_s", "status", "final", "account", "model", "tier")


def logical_outcomes(requests: pa.Table, warmup_s: float, duration_s: float) -> dict[str, Any]:
    """{account: {model: {tier: group}}}; see `_group` for a group's fields. Every (account,
    model, tier) that sent a request has a group, with zero counts if none was measured."""
    if requests.num_rows == 0:
        return {}
    logical = requests["logical_id"].to_numpy()
    attempt = requests["attempt"].to_numpy()
    arrival = requests["arrival_s"].to_numpy()
    status = requests["status"].to_numpy()
    final = requests["final"].to_numpy()
    firsts = (attempt == 1) & (arrival >= warmup_s) & (arrival < duration_s)
    measured = np.isin(logical, logical[firsts])  # every attempt of those
    keys = [
        requests[name].combine_chunks().dictionary_encode() for name in ("account", "model", "tier")
    ]
    names = [key.dictionary.to_pylist() for key in keys]
    codes = [key.indices.to_numpy(zero_copy_only=False).astype(np.int64) for key in keys]
    combined = (codes[0] * len(names[1]) + codes[1]) * len(names[2]) + codes[2]
    order = np.argsort(combined, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(combined[order]) != 0])
    result: dict[str, Any] = {}
    for of_group in np.split(order, starts[1:]):  # thousands of accounts: one sort, no scans
        rows = of_group[measured[of_group]]
        one = of_group[0]
        account, model, tier = (names[i][codes[i][one]] for i in range(3))
        group = _group(status[rows], attempt[rows], final[rows])
        result.setdefault(account, {}).setdefault(model, {})[tier] = group
    return {
        account: {model: dict(sorted(tiers.items())) for model, tiers in sorted(models.items())}
        for account, models in sorted(result.items())
    }


def _group(status: np.ndarray, attempt: np.ndarray, final: np.ndarray) -> dict[str, Any]:
    codes, counts = np.unique(status, return_counts=True)
    ended = status[final]
    served = int((ended == STATUS_OK).sum())
    gave_up = int(np.isin(ended, list(RETRYABLE)).sum())
    logical = int((attempt == 1).sum())
    end_codes, end_counts = np.unique(ended, return_counts=True)
    return {
        "attempts": int(status.size),
        "attempts_by_status": {str(int(c)): int(n) for c, n in zip(codes, counts, strict=True)},
        "logical_requests": logical,
        "served": served,
        "gave_up": gave_up,
        "refused": int(ended.size) - served - gave_up,
        "unfinished": logical - int(ended.size),
        "final_status": {str(int(c)): int(n) for c, n in zip(end_codes, end_counts, strict=True)},
    }
