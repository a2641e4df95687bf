"""The router's own approximate picture of its replicas: which prefix blocks each holds, and
their load, as a router that cannot look inside replicas would keep them.

Prefixes: every request routed to a replica is assumed cached there afterwards. Per owner of a
block chain (`sim.workload.chains`) the index keeps how far each replica is believed to hold
it; each replica's owners are kept in LRU order up to the replica's KV capacity in blocks, so
the index forgets roughly when the replica would. Load: a snapshot of outstanding tokens,
queue depth and KV use, refreshed at most every `staleness_s` (a router polls metrics; between
polls it routes on stale numbers).
"""

from __future__ import annotations

from collections import OrderedDict

from sim.request import Request
from sim.routing.base import PoolView
from sim.workload.chains import Runs


class PrefixIndex:
    def __init__(self, replicas: int, capacity_blocks: int) -> None:
        self.replicas = replicas
        self._held: dict[int, dict[int, int]] = {}  # owner -> {replica: believed end index}
        self._lru = [OrderedDict[int, int]() for _ in range(replicas)]  # owner -> blocks
        self._blocks = [0] * replicas
        self._capacity = max(capacity_blocks, 1)

    def matches(self, runs: Runs) -> list[int]:
        """Leading blocks of the chain each replica is believed to hold."""
        depth = [0] * self.replicas
        alive = set(range(self.replicas))
        for owner, first, end in runs:
            held = self._held.get(owner, {})
            for replica in list(alive):
                reach = min(held.get(replica, first), end)
                depth[replica] += max(reach - first, 0)
                if reach < end:
                    alive.discard(replica)
            if not alive:
                break
        return depth

    def routed(self, replica: int, runs: Runs) -> None:
        lru = self._lru[replica]
        for owner, first, end in runs:
            held = self._held.setdefault(owner, {})
            before = held.get(replica, first)
            if end > before:
                held[replica] = end
                self._blocks[replica] += end - before
                lru[owner] = lru.get(owner, 0) + end - before
            lru.move_to_end(owner)
        while self._blocks[replica] > self._capacity and len(lru) > 1:
            owner, blocks = lru.popitem(last=False)
            self._blocks[replica] -= blocks
            held = self._held[owner]
            del held[replica]
            if not held:
                del self._held[owner]

    def forget(self, replica: int) -> None:
        """The replica left the serving set (its cache will be lost): nothing is believed
        held there any more."""
        for owner in self._lru[replica]:
            held = self._held[owner]
            del held[replica]
            if not held:
                del self._held[owner]
        self._lru[replica].clear()
        self._blocks[replica] = 0


class LoadSnapshot:
    """Replica load as last polled: outstanding tokens, requests (running + waiting), KV use
    (0..1)."""

    def __init__(self, pool: PoolView, staleness_s: float) -> None:
        self.pool = pool
        self.staleness_s = staleness_s
        self.taken_s = -float("inf")
        self.tokens: list[int] = []
        self.requests: list[int] = []
        self.kv_use: list[float] = []

    def routed(self, replica: int, request: Request) -> None:
        """Between polls the router still knows what it sent itself."""
        self.tokens[replica] += request.prompt_tokens + request.output_tokens
        self.requests[replica] += 1

    def refresh(self, now_s: float) -> None:
        if now_s - self.taken_s < self.staleness_s and self.tokens:
            return
        self.taken_s = now_s
        self.tokens = list(self.pool.load.outstanding_tokens)
        self.requests = [len(r.running) + r.waiting for r in self.pool.replicas]
        capacity = max(self.pool.kv_capacity_blocks, 1)
        self.kv_use = [replica.kv_used_blocks / capacity for replica in self.pool.replicas]
