"""What the pool, its router, the sampler and the engine use of a replica, whichever kind it
is: a batching `Replica` (KV blocks, iterations priced by the performance model) or a
`SlotReplica` (c servers with drawn service times, no KV: its KV levels are 0)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from sim.request import Request


class ServingReplica(Protocol):
    index: int
    running: dict[Request, None]  # in admission order
    prompt_tokens_admitted: int  # first admissions only: the cache hit ratio's terms
    cached_tokens_admitted: int
    iterations: int
    takes_batch: bool  # set by the pool: draws Batch rows from the pool's queue (serving)

    @property
    def waiting(self) -> int: ...

    @property
    def kv_used_blocks(self) -> int: ...

    @property
    def kv_cached_blocks(self) -> int: ...

    def enqueue(self, request: Request) -> None: ...

    def offer_batch(self) -> None:
        """Batch rows wait in the pool's queue: take what spare capacity allows."""
        ...

    def expire_batch(self) -> None:
        """Jobs in the queue's `expired` ended: stop their rows held here."""
        ...

    def waiting_requests(self) -> Iterator[Request]: ...

    def stop(self) -> list[Request]:
        """It fails or is shut down: every request it holds, running then waiting."""
        ...

    def busy_s_at(self, now: float) -> float:
        """Busy seconds up to `now` (a slot replica: slot-seconds / slots)."""
        ...
