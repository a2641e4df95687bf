"""Sticky routing on the affinity key (x-session-affinity header or `user`) with bounded load.

A key's replicas are ranked by rendezvous hashing; the request goes to the first one whose
outstanding tokens are within `bounded_load` x the pool's mean (counting this request), so a hot key
spills to its next replica instead of overloading one (consistent hashing with bounded loads,
Mirrokni et al. 2018). Requests without a key go to the least loaded replica. Only serving
replicas count: a key's order is over every replica slot, so when its replica leaves, its
requests go to the next serving one in its order, and come back when it serves again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RoutingPolicy, lowest
from sim.routing.hashing import rendezvous_order

_ORDER_CACHE_KEYS = 200_000


class AffinityConfig(StrictModel):
    policy: Literal["affinity"]
    bounded_load: float = Field(
        1.25, ge=1.0, description="Spill when a replica's load would pass this x the mean load"
    )


class AffinityPolicy(RoutingPolicy):
    name = "affinity"
    Config = AffinityConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        assert isinstance(config, AffinityConfig)
        self.bound = config.bounded_load
        self._orders: dict[str, list[int]] = {}
        self.spills = 0

    def choose(self, request: Request) -> int:
        tokens = self.load.outstanding_tokens
        key = request.affinity_key
        if key is None:
            return lowest(tokens, self.serving)
        order = self._orders.get(key)
        if order is None:
            if len(self._orders) >= _ORDER_CACHE_KEYS:
                self._orders.clear()
            order = self._orders[key] = rendezvous_order(key, self.replicas)
        size = request.prompt_tokens + request.output_tokens
        serving = self.serving
        if len(serving) == self.replicas:
            load, among = sum(tokens), self.replicas
        else:
            load, among = sum(tokens[r] for r in serving), len(serving)
            is_serving = self.pool.is_serving
            order = [r for r in order if is_serving[r]]
        limit = self.bound * (load + size) / among
        for rank, replica in enumerate(order):
            if tokens[replica] <= limit:
                self.spills += rank > 0
                return replica
        raise AssertionError("the least loaded replica is always within the bound")
