"""A pool's Batch rows waiting for spare capacity (PLATFORM.md, Traffic tiers: Batch fills spare
capacity, lowest class, never preempts).

Batch rows wait here, not in a replica's scheduler: the pool's serving replicas draw from this
one queue when they have spare capacity, so a row never waits on a busy replica while another
has room, never counts in the router's load and never sits in front of an interactive request
in any scheduler's order. A replica takes a row only while no interactive request waits on it
and Batch holds less than `batch_max_share` of its sequences and KV blocks (docs/economics.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from sim.request import Request

BATCH = "batch"


class BatchQueue:
    """Waiting Batch rows, FIFO over every job of the pool, and the jobs that have expired."""

    def __init__(self) -> None:
        # Public: a replica asks whether any row waits on every plan (no call for `len`).
        self.rows: deque[Request] = deque()
        self.expired: set[str] = set()  # job names: their rows still running are dropped

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Request]:
        return iter(self.rows)

    def add(self, request: Request) -> None:
        self.rows.append(request)

    def requeue(self, request: Request) -> None:
        """A preempted row (or one a failed replica held) goes first: it recomputes."""
        self.rows.appendleft(request)

    def head(self) -> Request:
        return self.rows[0]

    def pop(self) -> Request:
        return self.rows.popleft()

    def expire(self, job: str) -> list[Request]:
        """The job expired: its waiting rows are taken out and returned."""
        self.expired.add(job)
        gone = [row for row in self.rows if row.traffic == job]
        if gone:
            self.rows = deque(row for row in self.rows if row.traffic != job)
        return gone


def reserved_blocks(request: Request, block_size: int) -> int:
    """The KV blocks a Batch row counts against the share: its full prompt + output length, so
    that Batch stays within its share however far its rows have decoded."""
    return -(-(request.prompt_tokens + request.output_tokens) // block_size)
