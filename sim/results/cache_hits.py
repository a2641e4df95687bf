"""The token-weighted prompt-cache hit ratio over time per (model, tier, traffic source, turn).

Computed after the run from the request records, on the sampling intervals of the time series,
so the replica hot path keeps only its per-replica counters (docs/metrics.md). The turn of a
session's request is bucketed up to TURN_CAP ("20+"), the figure the service states; requests
outside sessions are turn 0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

GROUPS = ("model", "tier", "traffic")
COLUMNS = ("admitted_s", *GROUPS, "turn", "prompt_tokens", "cached_tokens")  # what it reads
TURN_CAP = 20  # the last turn bucket holds this turn and every later one
# What the service states affinity reaches (PLATFORM.md, Prompt caching): cached share of a
# chat's prompt tokens by turn bucket.
STATED_HIT_RATIO_BY_TURN = {8: 0.77, TURN_CAP: 0.95}


def turn_buckets(turn: np.ndarray) -> np.ndarray:
    """Session turns 1, 2, ..., TURN_CAP (that one and later); 0 outside sessions."""
    return np.minimum(turn, TURN_CAP)


def turn_label(bucket: int) -> str:
    return f"{bucket}+" if bucket == TURN_CAP else str(bucket)


def hit_ratio_by_turn(turn: np.ndarray, prompt: np.ndarray, cached: np.ndarray) -> dict[str, float]:
    """Token-weighted hit ratio of session requests per turn bucket ("1", ..., "20+")."""
    buckets = turn_buckets(turn)
    prompt_sums = np.bincount(buckets, prompt, TURN_CAP + 1)
    cached_sums = np.bincount(buckets, cached, TURN_CAP + 1)
    return {
        turn_label(b): float(cached_sums[b] / prompt_sums[b])
        for b in range(1, TURN_CAP + 1)
        if prompt_sums[b] > 0
    }


def cache_hits_over_time(requests: pa.Table, timeseries: pa.Table) -> pa.Table:
    """Prompt and cached tokens of the requests first admitted in each sampling interval
    (t_s is the interval's end, as in timeseries.parquet), one row per group and turn bucket
    that had an admission in it. Admissions at or after the last sample (during the drain)
    are left out, as the time series leaves them out."""
    sample_s = np.unique(timeseries["t_s"].to_numpy())
    admitted_s = requests["admitted_s"].to_numpy()
    # Interval i is [sample_s[i-1], sample_s[i]); never admitted (NaN) sorts past the end.
    interval = np.searchsorted(sample_s, admitted_s, side="right")
    rows = np.flatnonzero(interval < sample_s.size)
    key = interval[rows]
    names: list[list[str]] = []
    for column in GROUPS:
        codes, dictionary = _sorted_codes(requests[column])
        key = key * len(dictionary) + codes[rows]
        names.append(dictionary)
    key = key * (TURN_CAP + 1) + turn_buckets(requests["turn"].to_numpy()[rows])
    keys, group = np.unique(key, return_inverse=True)
    # Float sums of whole tokens: exact below 2**53 tokens.
    prompt = np.bincount(group, requests["prompt_tokens"].to_numpy()[rows], keys.size)
    cached = np.bincount(group, requests["cached_tokens"].to_numpy()[rows], keys.size)
    labels: dict[str, pa.Array] = {}
    rest, turn = np.divmod(keys, TURN_CAP + 1)
    for column, dictionary in zip(reversed(GROUPS), reversed(names), strict=True):
        rest, code = np.divmod(rest, len(dictionary))
        labels[column] = pa.array(dictionary, pa.string()).take(code)  # in Arrow, not Python
    return pa.table(
        {
            "t_s": pa.array(sample_s[rest], pa.float64()),
            **{column: labels[column] for column in GROUPS},
            "turn": pa.array(turn, pa.int64()),
            "prompt_tokens": pa.array(prompt.astype(np.int64)),
            "cached_tokens": pa.array(cached.astype(np.int64)),
            "cache_hit_ratio": pa.array(cached / prompt, pa.float64()),  # prompts >= 1 token
        }
    )


def _sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A string column as integer codes whose order is the names' alphabetical order."""
    encoded = column.combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary.to_pylist()
    order = np.argsort(np.array(dictionary, dtype=object), kind="stable")
    rank = np.empty(len(dictionary), np.int64)
    rank[order] = np.arange(len(dictionary))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)], [dictionary[i] for i in order]
