"""The service's front door: finds the pool that serves a request's model and tier.

Rate limits, budgets and overload shedding are checks added here, in front of the pools.
"""

from __future__ import annotations

from sim.replica.pool import ReplicaPool
from sim.request import Request


class Gateway:
    def __init__(self, pools: dict[tuple[str, str], ReplicaPool]) -> None:
        """`pools` maps (model id, tier) to the pool that serves it."""
        self._pools = pools

    def submit(self, request: Request) -> None:
        self._pools[request.model, request.tier].submit(request)
