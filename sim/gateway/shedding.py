"""Overload shedding: a pool too busy answers 503 at the front door (PLATFORM.md: "a deployment
that is too busy sheds load with 503, even for a caller under its limits").

Per pool and tier, the estimated queueing delay of a new attempt is the larger of the age of
the oldest attempt still waiting for its first admission anywhere in the pool (the "sojourn
time" of the queue's head, as CoDel measures it) and the attempts waiting divided by their
recent admission rate (the last RATE_WINDOW admissions): the first alone lags a queue that
grows, the second alone misses a queue that stopped draining. A Standard attempt counts
Priority's delay too (Priority is admitted first). Standard (and Fast) attempts are shed when it
passes `shed_standard_after_s`, or when the pool's KV memory is exhausted with work waiting: no
serving replica has free blocks for the attempt's prompt while Priority or Standard work waits.
Priority attempts are shed only when the oldest waiting Priority attempt passes
`shed_priority_after_s`. Batch attempts are never shed: they wait (docs/gateway.md).

Cheap on every request's path: each pool keeps, per tier rank, the attempts it let through in
arrival order; the oldest still waiting is found by dropping from the front those admitted or
ended since, each attempt once.
"""

from __future__ import annotations

import math
from collections import deque

from sim.replica.pool import ReplicaPool
from sim.request import TIER_RANK, Request
from sim.status import STATUS_IN_FLIGHT, STATUS_SHED

PRIORITY_RANK = TIER_RANK["priority"]
STANDARD_RANK = TIER_RANK["standard"]  # Fast shares it


RATE_WINDOW = 32  # admissions whose times give a tier's recent admission rate


class _PoolShedding:
    __slots__ = (
        "admitted_s",
        "block_size",
        "capacity_blocks",
        "kv_rule",
        "pool",
        "queues",
        "threshold_s",
    )

    def __init__(self, pool: ReplicaPool) -> None:
        config = pool.config
        self.pool = pool
        inf = math.inf
        # Per tier rank: the estimated delay past which its attempts are shed (inf: never).
        self.threshold_s = (
            inf if config.shed_priority_after_s is None else config.shed_priority_after_s,
            inf if config.shed_standard_after_s is None else config.shed_standard_after_s,
        )
        self.kv_rule = config.shed_standard_on_kv_full and pool.kv_capacity_blocks > 0
        self.capacity_blocks = pool.kv_capacity_blocks
        self.block_size = config.block_size
        # Per rank: the attempts let through, in arrival order, and recent admission times.
        self.queues: tuple[deque[Request], deque[Request]] = (deque(), deque())
        self.admitted_s: tuple[deque[float], deque[float]] = (
            deque(maxlen=RATE_WINDOW),
            deque(maxlen=RATE_WINDOW),
        )

    def delay_s(self, rank: int, now_s: float) -> float:
        """Estimated queueing delay of a new attempt of `rank` (-1: nothing of it waits): the
        larger of the oldest waiting attempt's age and the waiting attempts / their recent
        admission rate."""
        queue, admitted = self.queues[rank], self.admitted_s[rank]
        while queue:
            head = queue[0]
            if head.status == STATUS_IN_FLIGHT and head.admitted_s != head.admitted_s:  # NaN
                age_s = now_s - head.arrival_s
                span_s = admitted[-1] - admitted[0] if len(admitted) > 1 else 0.0
                if span_s > 0.0:
                    return max(age_s, len(queue) * span_s / (len(admitted) - 1))
                return age_s
            if head.admitted_s == head.admitted_s:
                admitted.append(head.admitted_s)
            queue.popleft()
        return -1.0

    def kv_exhausted(self, request: Request) -> bool:
        """No serving replica has free KV blocks for the attempt's prompt."""
        need = (request.prompt_tokens + self.block_size) // self.block_size
        capacity = self.capacity_blocks
        replicas = self.pool.replicas
        for index in self.pool.view.serving:
            if capacity - replicas[index].kv_used_blocks >= need:
                return False
        return True


def sheds(pool: ReplicaPool) -> bool:
    """Whether the pool sets any shedding rule that can refuse an attempt."""
    config = pool.config
    return (
        config.shed_standard_after_s is not None
        or config.shed_priority_after_s is not None
        or (config.shed_standard_on_kv_full and pool.kv_capacity_blocks > 0)
    )


class SheddingCheck:
    """The front-door check of the shedding rule (last in order: after budget and limits)."""

    def __init__(self, routes: dict[tuple[str, str], ReplicaPool]) -> None:
        states: dict[int, _PoolShedding] = {}
        # Routes to a pool that never sheds (no threshold, no KV rule) keep no state: their
        # attempts always pass, and the check costs one lookup.
        self._pools: dict[tuple[str, str], _PoolShedding | None] = {
            key: states.setdefault(id(pool), _PoolShedding(pool)) if sheds(pool) else None
            for key, pool in routes.items()
        }

    @property
    def active(self) -> bool:
        """Whether any pool sheds (else the gateway need not ask this check)."""
        return any(state is not None for state in self._pools.values())

    def admit(self, request: Request, now_s: float) -> int:
        rank = TIER_RANK[request.tier]
        if rank > STANDARD_RANK:
            return 0  # Batch waits
        state = self._pools[request.model, request.tier]
        if state is None:
            return 0
        if rank == PRIORITY_RANK:
            if state.delay_s(PRIORITY_RANK, now_s) > state.threshold_s[PRIORITY_RANK]:
                return STATUS_SHED
        else:
            waited_s = max(state.delay_s(PRIORITY_RANK, now_s), state.delay_s(STANDARD_RANK, now_s))
            if waited_s > state.threshold_s[STANDARD_RANK] or (
                state.kv_rule and waited_s >= 0.0 and state.kv_exhausted(request)
            ):
                return STATUS_SHED
        state.queues[rank].append(request)
        return 0

    def settle(self, request: Request, now_s: float) -> None:
        """Nothing to give back: the queues drop ended attempts as they reach their front."""
