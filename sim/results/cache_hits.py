"""The token-weighted prompt-cache hit ratio over time per (model, tier, traffic source).

Computed after the run from the request records, on the sampling intervals of the time series,
so the replica hot path keeps only its per-replica counters (docs/metrics.md).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

GROUPS = ("model", "tier", "traffic")


def cache_hits_over_time(requests: pa.Table, timeseries: pa.Table) -> pa.Table:
    """Prompt and cached tokens of the requests first admitted in each sampling interval
    (t_s is the interval's end, as in timeseries.parquet), one row per group that had an
    admission in it. Admissions at or after the last sample (during the drain) are left out,
    as the time series leaves them out."""
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
    keys, group = np.unique(key, return_inverse=True)
    # Float sums of whole tokens: exact below 2**53 tokens.
    prompt = np.bincount(group, requests["prompt_tokens"].to_numpy()[rows], keys.size)
    cached = np.bincount(group, requests["cached_tokens"].to_numpy()[rows], keys.size)
    labels: dict[str, list[str]] = {}
    rest = keys
    for column, dictionary in zip(reversed(GROUPS), reversed(names), strict=True):
        rest, code = np.divmod(rest, len(dictionary))
        labels[column] = [dictionary[c] for c in code]
    return pa.table(
        {
            "t_s": pa.array(sample_s[rest], pa.float64()),
            **{column: pa.array(labels[column], pa.string()) for column in GROUPS},
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
