"""Levels sampled over time, per replica and per pool: running, waiting, KV blocks, busy
fraction, the prompt and cached tokens admitted during the interval (cache hit ratio), and the
fleet: replicas serving, replicas held (starting, serving or draining) and the replica-seconds
held since the start (what GPU cost is computed from).

Kept apart from per-request values: these are time-weighted states, not request outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from sim.clock import Clock
from sim.replica.pool import DOWN, SERVING, ReplicaPool
from sim.results.intervals import IntervalSampler

POOL_LEVEL = -1  # the `replica` value of a pool's aggregate row
# A sample's values, in the order the sampler gathers them (token counts: during the interval).
LEVELS = (
    "running",
    "waiting",
    "kv_blocks_used",
    "kv_blocks_cached",
    "kv_blocks_total",
    "busy_fraction",
    "prompt_tokens",
    "cached_tokens",
    "replicas_serving",
    "replicas_held",
)


class TimeSeriesSampler(IntervalSampler):
    def __init__(
        self, env: Clock, pools: Sequence[ReplicaPool], period_s: float, end_s: float
    ) -> None:
        super().__init__(env, period_s, end_s)
        self.pools = pools
        self.columns: dict[str, list] = {
            name: []
            for name in ("t_s", "model", "pool", "replica", *LEVELS, "cache_hit_ratio", "held_s")
        }
        # Cumulative counters at the last sample: (busy seconds, prompt tokens, cached tokens).
        self._last = {(p.model_id, p.name, i): (0.0, 0, 0) for p in pools for i in range(p.slots)}

    def _sample(self, now: float) -> None:
        add = self._add
        for pool in self.pools:
            totals = [0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0]
            held_s = 0.0
            for index, replica in enumerate(pool.replicas):
                key = (pool.model_id, pool.name, index)
                busy_s, prompt, cached = pool.counters(index, now)
                state = pool.state[index]
                last_busy_s, last_prompt, last_cached = self._last[key]
                self._last[key] = (busy_s, prompt, cached)
                row = [
                    len(replica.running),
                    replica.waiting,
                    replica.kv_used_blocks,
                    replica.kv_cached_blocks,
                    pool.kv_capacity_blocks,
                    (busy_s - last_busy_s) / self.period_s,
                    prompt - last_prompt,
                    cached - last_cached,
                    int(state == SERVING),
                    int(state != DOWN),
                ]
                replica_held_s = pool.held_s(index, now)
                add(now, pool, index, row, replica_held_s)
                for i, value in enumerate(row):
                    totals[i] += value
                held_s += replica_held_s
            totals[5] /= max(totals[-1], 1)  # busy_fraction: the pool's is the held replicas' mean
            add(now, pool, POOL_LEVEL, totals, held_s)

    def _add(self, now: float, pool: ReplicaPool, replica: int, row: list, held_s: float) -> None:
        c = self.columns
        c["t_s"].append(now)
        c["model"].append(pool.model_id)
        c["pool"].append(pool.name)
        c["replica"].append(replica)
        for name, value in zip(LEVELS, row, strict=True):
            c[name].append(value)
        prompt, cached = row[6], row[7]
        c["cache_hit_ratio"].append(cached / prompt if prompt else float("nan"))
        c["held_s"].append(held_s)

    def table(self) -> pa.Table:
        types = {"t_s": pa.float64(), "model": pa.string(), "pool": pa.string()}
        types |= {n: pa.float64() for n in ("busy_fraction", "cache_hit_ratio", "held_s")}
        return pa.table(
            {
                name: pa.array(values, types.get(name, pa.int64()))
                for name, values in self.columns.items()
            }
        )
