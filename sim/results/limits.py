"""limits.parquet: per (account, model id), on the time series' intervals, the three limits in
force, the tokens used against them, the bucket levels, attempts and 429s.

Read from the rate-limit check's buckets at each sampling time. The buckets are lazy: reading
them brings their limit updates up to the sampling time, which changes nothing a request sees
(see `sim.gateway.buckets`). Pairs no request has touched yet have no row; a run without
`rate_limits` has none.
"""

from __future__ import annotations

import pyarrow as pa

from sim.clock import Clock
from sim.gateway.buckets import TokenBuckets
from sim.gateway.limits.base import LIMIT_KINDS
from sim.results.intervals import IntervalSampler

PER_MINUTE = 1 / 60.0
COLUMNS = (
    "t_s",
    "account",
    "model",
    *(f"limit_{kind}_tps" for kind in LIMIT_KINDS),
    *(f"{kind}_tokens" for kind in LIMIT_KINDS),  # used during the interval
    *(f"bucket_{kind}_tokens" for kind in LIMIT_KINDS),  # levels at t_s (negative: debt)
    "attempts",  # during the interval
    "rate_limited",  # 429s during the interval (token buckets or request cap)
)


class LimitsSampler(IntervalSampler):
    def __init__(
        self,
        env: Clock,
        buckets: dict[tuple[str, str], TokenBuckets],
        period_s: float,
        end_s: float,
    ) -> None:
        """`buckets`: the rate-limit check's, by (account, model id), filled as requests come."""
        super().__init__(env, period_s, end_s)
        self.buckets = buckets
        self.columns: dict[str, list] = {name: [] for name in COLUMNS}
        self._last: dict[tuple[str, str], tuple[float, float, float, int, int]] = {}

    def _sample(self, now: float) -> None:
        c = self.columns
        last = self._last
        for key, buckets in self.buckets.items():
            buckets.advance(now)
            used = buckets.used_total()
            p0, p1, p2, attempts, refused = last.get(key, (0.0, 0.0, 0.0, 0, 0))
            last[key] = (used[0], used[1], used[2], buckets.attempts, buckets.rate_limited)
            limits = buckets.limit_tpm
            levels = buckets.levels_at(now)
            c["t_s"].append(now)
            c["account"].append(key[0])
            c["model"].append(key[1])
            c["limit_prompt_tps"].append(limits[0] * PER_MINUTE)
            c["limit_uncached_prompt_tps"].append(limits[1] * PER_MINUTE)
            c["limit_generated_tps"].append(limits[2] * PER_MINUTE)
            c["prompt_tokens"].append(used[0] - p0)
            c["uncached_prompt_tokens"].append(used[1] - p1)
            c["generated_tokens"].append(used[2] - p2)
            c["bucket_prompt_tokens"].append(levels[0])
            c["bucket_uncached_prompt_tokens"].append(levels[1])
            c["bucket_generated_tokens"].append(levels[2])
            c["attempts"].append(buckets.attempts - attempts)
            c["rate_limited"].append(buckets.rate_limited - refused)

    def table(self) -> pa.Table:
        types = {"account": pa.string(), "model": pa.string()}
        types |= {"attempts": pa.int64(), "rate_limited": pa.int64()}
        return pa.table(
            {
                name: pa.array(values, types.get(name, pa.float64()))
                for name, values in self.columns.items()
            }
        )
