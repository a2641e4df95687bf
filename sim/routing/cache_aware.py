"""Send a request where its prefix is cached, unless that replica is too loaded.

The router's approximate prefix index and stale load view are in `prefix_index.py`. The replica
with the longest believed match wins (ties: the less loaded), provided the match covers at least
`min_match_ratio` of the prompt's blocks and that replica carries at most `imbalance_ratio` x
the mean outstanding tokens; otherwise the least loaded wins (the rule of SGLang's cache-aware
router: a short match, such as a prefix every request shares, is not worth a queue).
"""

from __future__ import annotations

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RoutingPolicy, lowest
from sim.routing.config import CacheAwareConfig
from sim.routing.prefix_index import LoadSnapshot, PrefixIndex
from sim.workload.chains import runs_blocks


class CacheAwarePolicy(RoutingPolicy):
    name = "cache_aware"
    Config = CacheAwareConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        assert isinstance(config, CacheAwareConfig)
        self.ratio = config.imbalance_ratio
        self.min_match = config.min_match_ratio
        self.index = PrefixIndex(self.replicas, pool.kv_capacity_blocks)
        self.snapshot = LoadSnapshot(pool, config.staleness_s)

    def choose(self, request: Request) -> int:
        snapshot = self.snapshot
        snapshot.refresh(request.arrival_s)
        tokens = snapshot.tokens
        serving = self.serving
        least = lowest(tokens, serving)
        runs = request.block_runs
        choice = least
        if runs:
            depth = self.index.matches(runs)
            best = max(serving, key=lambda r: (depth[r], -tokens[r]))
            mean = sum(tokens[r] for r in serving) / len(serving)
            long_enough = depth[best] > 0 and depth[best] >= self.min_match * runs_blocks(runs)
            if long_enough and tokens[best] <= self.ratio * mean:
                choice = best
            self.index.routed(choice, runs)
        snapshot.routed(choice, request)
        return choice

    def serving_changed(self, replica: int, serving: bool) -> None:
        if not serving:
            self.index.forget(replica)
