"""Send a request where its prefix is cached, unless that replica is too loaded.

The router's approximate prefix index and stale load view are in `prefix_index.py`. The replica
with the longest believed match wins (ties: the less loaded); if it carries more than
`imbalance_ratio` x the mean outstanding tokens, or nothing matches, the least loaded wins.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RoutingPolicy
from sim.routing.prefix_index import LoadSnapshot, PrefixIndex
from sim.units import Seconds


class CacheAwareConfig(StrictModel):
    policy: Literal["cache_aware"]
    staleness_s: Seconds = Field(1.0, ge=0, description="Age of the router's load view at most, s")
    imbalance_ratio: float = Field(
        1.5, ge=1.0, description="Leave the best match when its load passes this x the mean load"
    )


class CacheAwarePolicy(RoutingPolicy):
    name = "cache_aware"
    Config = CacheAwareConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        assert isinstance(config, CacheAwareConfig)
        self.ratio = config.imbalance_ratio
        self.index = PrefixIndex(self.replicas, pool.kv_capacity_blocks)
        self.snapshot = LoadSnapshot(pool, config.staleness_s)

    def choose(self, request: Request) -> int:
        snapshot = self.snapshot
        snapshot.refresh(request.arrival_s)
        tokens = snapshot.tokens
        least = tokens.index(min(tokens))
        runs = request.block_runs
        if not runs:
            return least
        depth = self.index.matches(runs)
        best = max(range(self.replicas), key=lambda r: (depth[r], -tokens[r]))
        mean = sum(tokens) / self.replicas
        choice = best if depth[best] and tokens[best] <= self.ratio * mean else least
        self.index.routed(choice, runs)
        return choice
