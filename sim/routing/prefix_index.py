"""The router's own approximate picture of its replicas: which prefix blocks each holds, and
their load, as a router that cannot look inside replicas would keep them.

Prefixes: every request routed to a replica is assumed cached there afterwards; each replica's
entries are kept in LRU order up to the replica's KV capacity, so the index forgets roughly when
the replica would. Load: a snapshot of outstanding tokens, queue depth and KV use, refreshed at
most every `staleness_s` (a router polls metrics; between polls it routes on stale numbers).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sim.routing.base import PoolView


class PrefixIndex:
    def __init__(self, replicas: int, capacity_blocks: int) -> None:
        self._holders: dict[int, int] = {}  # block id -> bitmask of replicas holding it
        self._lru = [OrderedDict[int, None]() for _ in range(replicas)]
        self._capacity = max(capacity_blocks, 1)
        self.replicas = replicas

    def matches(self, block_ids: Sequence[int]) -> list[int]:
        """Leading blocks of `block_ids` each replica is believed to hold."""
        depth = [0] * self.replicas
        alive = (1 << self.replicas) - 1
        holders = self._holders
        for i, block_id in enumerate(block_ids):
            mask = holders.get(block_id, 0)
            dropped = alive & ~mask
            while dropped:
                low = dropped & -dropped
                depth[low.bit_length() - 1] = i
                dropped ^= low
            alive &= mask
            if not alive:
                return depth
        length = len(block_ids)
        while alive:
            low = alive & -alive
            depth[low.bit_length() - 1] = length
            alive ^= low
        return depth

    def routed(self, replica: int, block_ids: Sequence[int]) -> None:
        lru = self._lru[replica]
        holders = self._holders
        bit = 1 << replica
        for block_id in block_ids:
            if block_id in lru:
                lru.move_to_end(block_id)
            else:
                lru[block_id] = None
                holders[block_id] = holders.get(block_id, 0) | bit
        while len(lru) > self._capacity:
            old, _ = lru.popitem(last=False)
            mask = holders[old] & ~bit
            if mask:
                holders[old] = mask
            else:
                del holders[old]


class LoadSnapshot:
    """Replica load as last polled: outstanding tokens, waiting requests, KV use (0..1)."""

    def __init__(self, pool: PoolView, staleness_s: float) -> None:
        self.pool = pool
        self.staleness_s = staleness_s
        self.taken_s = -float("inf")
        self.tokens: list[int] = []
        self.waiting: list[int] = []
        self.kv_use: list[float] = []

    def refresh(self, now_s: float) -> None:
        if now_s - self.taken_s < self.staleness_s and self.tokens:
            return
        self.taken_s = now_s
        self.tokens = list(self.pool.load.outstanding_tokens)
        self.waiting = [replica.waiting for replica in self.pool.replicas]
        capacity = max(self.pool.kv_capacity_blocks, 1)
        self.kv_use = [
            getattr(getattr(replica, "kv", None), "used_blocks", 0) / capacity
            for replica in self.pool.replicas
        ]
