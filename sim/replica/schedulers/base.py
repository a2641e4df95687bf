"""What every replica scheduler owns and decides: the waiting requests (its queues), which one
is admitted next, and which running request gives way when memory runs out.

The replica owns the loop and the memory (plan, price, apply, skip ahead): it asks the
scheduler for the next waiting request, admits it if slots, budget and blocks allow (the first
that does not fit stops admission: no overtaking), and asks for a victim when decodes need
blocks that are not free. A scheduler orders the interactive tiers only: Batch rows wait in
their pool's queue and are admitted, and preempted first, by the replica itself
(`sim/replica/batch.py`). A policy is one file and one registry line (`__init__.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import ClassVar

from sim.config_base import StrictModel
from sim.request import TIER_RANK, Request

LOWEST_RANK = TIER_RANK["standard"]  # the lowest interactive tier (Batch is not queued here)


class Scheduler:
    name: ClassVar[str]
    Config: ClassVar[type[StrictModel]]
    # True: a waiting request that cannot be admitted may displace running ones
    # (`admission_victim`), and the replica asks before each admission round.
    preempts_to_admit: ClassVar[bool] = False

    def __init__(self, config: StrictModel) -> None:
        self.config = config
        self.waiting = 0

    def add(self, request: Request) -> None:
        """A request arrives: it waits at the back of its queue."""
        raise NotImplementedError

    def requeue(self, request: Request) -> None:
        """A preempted request: it waits at the front of its queue (and recomputes)."""
        raise NotImplementedError

    def head(self) -> Request | None:
        """The waiting request admitted next, if it fits (None: nothing waits)."""
        raise NotImplementedError

    def pop_head(self, request: Request) -> None:
        """`request`, the head, is admitted now."""
        raise NotImplementedError

    def waiting_requests(self) -> Iterator[Request]:
        raise NotImplementedError

    def victim(self, running: dict[Request, None]) -> Request:
        """The running request (in admission order) preempted when decodes run out of blocks."""
        raise NotImplementedError

    def admission_victim(self, head: Request, running: dict[Request, None]) -> Request | None:
        """A running request to preempt so that `head` can be admitted (None: none may be)."""
        return None


class TierQueues(Scheduler):
    """One FIFO queue per tier rank (Priority, Standard or Fast); the head is the first
    of the first non-empty queue; a victim is the most recently admitted request of the lowest
    tier running, so that a lower tier never displaces a higher one (PLATFORM.md)."""

    def __init__(self, config: StrictModel) -> None:
        super().__init__(config)
        self.queues: tuple[deque[Request], ...] = tuple(deque() for _ in range(LOWEST_RANK + 1))

    def add(self, request: Request) -> None:
        self.queues[TIER_RANK[request.tier]].append(request)
        self.waiting += 1

    def requeue(self, request: Request) -> None:
        self.queues[TIER_RANK[request.tier]].appendleft(request)
        self.waiting += 1

    def head(self) -> Request | None:
        for queue in self.queues:
            if queue:
                return queue[0]
        return None

    def pop_head(self, request: Request) -> None:
        self.queues[TIER_RANK[request.tier]].popleft()
        self.waiting -= 1

    def waiting_requests(self) -> Iterator[Request]:
        for queue in self.queues:
            yield from queue

    def victim(self, running: dict[Request, None]) -> Request:
        """A scan from the most recent, but only when memory runs out."""
        candidates = reversed(running)
        victim = next(candidates)
        lowest = TIER_RANK[victim.tier]
        for request in candidates:
            if lowest == LOWEST_RANK:
                break
            rank = TIER_RANK[request.tier]
            if rank > lowest:
                victim, lowest = request, rank
        return victim
