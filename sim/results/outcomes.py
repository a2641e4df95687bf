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
    # Thousands of accounts: every group's counts from one pass (bincount) over all attempts,
    # no per-group scans or calls.
    groups, group = np.unique(combined, return_inverse=True)
    statuses, status_index = np.unique(status, return_inverse=True)
    by_status = _counts(group[measured], status_index[measured], groups.size, statuses.size)
    ends = measured & final
    final_status = _counts(group[ends], status_index[ends], groups.size, statuses.size)
    firsts_measured = measured & (attempt == 1)
    logical_requests = np.bincount(group[firsts_measured], minlength=groups.size).tolist()
    status_codes = statuses.tolist()
    result: dict[str, Any] = {}
    for key, counts, ended, requests_logical in zip(
        groups.tolist(), by_status, final_status, logical_requests, strict=True
    ):
        rest, tier = divmod(key, len(names[2]))
        account, model = divmod(rest, len(names[1]))
        by_tier = result.setdefault(names[0][account], {}).setdefault(names[1][model], {})
        by_tier[names[2][tier]] = _group(status_codes, counts, ended, requests_logical)
    return {
        account: {model: dict(sorted(tiers.items())) for model, tiers in sorted(models.items())}
        for account, models in sorted(result.items())
    }


def _counts(group: np.ndarray, status_index: np.ndarray, groups: int, statuses: int) -> list:
    """Per group, the number of rows with each status (a list of lists, groups by statuses)."""
    cells = np.bincount(group * statuses + status_index, minlength=groups * statuses)
    return cells.reshape(groups, statuses).tolist()


def _group(codes: list[int], counts: list[int], ended: list[int], logical: int) -> dict[str, Any]:
    """A group's fields from its attempts' counts by status (`counts`), its logical requests'
    final attempts' (`ended`), both over `codes`, and its number of logical requests."""
    finals = sum(ended)
    served = sum(n for code, n in zip(codes, ended, strict=True) if code == STATUS_OK)
    gave_up = sum(n for code, n in zip(codes, ended, strict=True) if code in RETRYABLE)
    return {
        "attempts": sum(counts),
        "attempts_by_status": _by_code(codes, counts),
        "logical_requests": logical,
        "served": served,
        "gave_up": gave_up,
        "refused": finals - served - gave_up,
        "unfinished": logical - finals,
        "final_status": _by_code(codes, ended),
    }


def _by_code(codes: list[int], counts: list[int]) -> dict[str, int]:
    """{"200": n, ...}: the codes that occur, in increasing order."""
    return {str(code): n for code, n in zip(codes, counts, strict=True) if n}
