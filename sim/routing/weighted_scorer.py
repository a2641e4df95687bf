"""Pick the replica with the best weighted sum of normalised scores (as llm-d's scheduler does):
prefix match (share of the prompt's blocks believed cached there), queue depth (fewer requests
running or waiting is better, relative to the deepest replica) and KV-cache use (emptier is
better), among the serving replicas. Ties go to the lowest index."""

from __future__ import annotations

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RoutingPolicy
from sim.routing.config import WeightedScorerConfig
from sim.routing.prefix_index import LoadSnapshot, PrefixIndex
from sim.workload.chains import runs_blocks


class WeightedScorerPolicy(RoutingPolicy):
    name = "weighted_scorer"
    Config = WeightedScorerConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        assert isinstance(config, WeightedScorerConfig)
        self.weights = config.weights
        self.index = PrefixIndex(self.replicas, pool.kv_capacity_blocks)
        self.snapshot = LoadSnapshot(pool, config.staleness_s)

    def choose(self, request: Request) -> int:
        snapshot = self.snapshot
        snapshot.refresh(request.arrival_s)
        runs = request.block_runs or ()
        blocks = runs_blocks(runs)
        depth = self.index.matches(runs) if runs else [0] * self.replicas
        serving = self.serving
        deepest = max(max(snapshot.requests[r] for r in serving), 1)
        w = self.weights
        scores = [
            w.prefix * depth[r] / max(blocks, 1)
            + w.queue * (1 - snapshot.requests[r] / deepest)
            + w.kv * (1 - snapshot.kv_use[r])
            for r in serving
        ]
        choice = serving[scores.index(max(scores))]
        if runs:
            self.index.routed(choice, runs)
        snapshot.routed(choice, request)
        return choice

    def serving_changed(self, replica: int, serving: bool) -> None:
        if not serving:
            self.index.forget(replica)
