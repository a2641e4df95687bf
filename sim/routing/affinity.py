"""Sticky routing on the affinity key (x-session-affinity header or `user`) with bounded load.

A key's replicas are ranked by rendezvous hashing and the request goes to the first one that is
not hot (consistent hashing with bounded loads, Mirrokni et al. 2018). The load is requests in
flight, which a gateway counts exactly; a replica is hot when it holds more than `bounded_load` x
the pool's mean (counting this request) AND has requests queued, not yet in its batch. The
second condition is what keeps sessions home: under continuous batching a replica whose requests
all run is not overloaded, however uneven the counts, and a spill costs the session its cached
history. Outstanding tokens were a poor measure: they count cached history, so ordinary
fluctuation on moderate multi-turn load crossed the bound and moved a third of all turns.
Requests without a key go to the least loaded replica (as `least_loaded`), and are counted so
that the run can say so. Only serving replicas count: a key's order is over every replica slot,
so when its replica leaves, its requests go to the next serving one in its order, and come back
when it serves again.
"""

from __future__ import annotations

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RoutingPolicy, lowest
from sim.routing.config import AffinityConfig
from sim.routing.hashing import rendezvous_order

_ORDER_CACHE_KEYS = 200_000


class AffinityPolicy(RoutingPolicy):
    name = "affinity"
    Config = AffinityConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        assert isinstance(config, AffinityConfig)
        self.bound = config.bounded_load
        self._orders: dict[str, list[int]] = {}
        self.spills = 0
        self.routed = 0
        self.without_key = 0

    def choose(self, request: Request) -> int:
        self.routed += 1
        key = request.affinity_key
        if key is None:
            self.without_key += 1
            return lowest(self.load.outstanding_tokens, self.serving)
        order = self._orders.get(key)
        if order is None:
            if len(self._orders) >= _ORDER_CACHE_KEYS:
                self._orders.clear()
            order = self._orders[key] = rendezvous_order(key, self.replicas)
        serving = self.serving
        if len(serving) < self.replicas:
            is_serving = self.pool.is_serving
            order = [r for r in order if is_serving[r]]
        in_flight = self.load.outstanding_requests
        replicas = self.pool.replicas
        limit = -1.0  # the bound, summed only once a replica with requests queued is met
        for rank, replica in enumerate(order):
            if replicas[replica].waiting:
                if limit < 0.0:
                    limit = self._limit()
                if in_flight[replica] > limit:
                    continue
            self.spills += rank > 0
            return replica
        raise AssertionError("the replica with the fewest requests is always within the bound")

    def _limit(self) -> float:
        """`bounded_load` x the mean requests in flight per serving replica, with this one."""
        in_flight = self.load.outstanding_requests
        serving = self.serving
        if len(serving) == self.replicas:
            load = sum(in_flight)
        else:
            load = sum(in_flight[r] for r in serving)
        return self.bound * (load + 1) / len(serving)

    def warnings(self) -> list[str]:
        if not self.without_key:
            return []
        return [
            f"routing affinity: {self.without_key:,} of {self.routed:,} requests carried no "
            "affinity key and went to the least loaded replica, as least_loaded would send "
            "them (set `affinity: session` or `affinity: user` on their traffic source)"
        ]
