"""A replica as c parallel servers: each request holds one of `max_num_seqs` slots for a service
time drawn independently of the batch (`fixed` or `exponential` perf models).

Not a GPU model: it makes the queueing core checkable against M/M/c and M/D/c theory. The whole
answer is ready when service ends, so the first token and the finish coincide. It holds no KV
cache (its KV levels are 0); its scheduler orders the waiting requests as on a GPU replica, and
never preempts (the pool refuses a policy that would). Batch rows take free slots while no
interactive request waits and Batch holds less than its share of the slots; since a slot model
cannot preempt, the share is all that keeps slots for interactive arrivals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import cast

import simpy

from sim.perf.config import ExponentialPerf, FixedPerf
from sim.replica.batch import BATCH, BatchQueue
from sim.replica.schedulers.base import Scheduler
from sim.request import Request
from sim.rng import unit, word
from sim.status import STATUS_EXPIRED, STATUS_OK


class SlotReplica:
    kv_used_blocks = 0  # no KV cache
    kv_cached_blocks = 0

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        perf: FixedPerf | ExponentialPerf,
        slots: int,
        seed: int,
        on_done: Callable[[Request], None],
        scheduler: Scheduler,
        batch: BatchQueue | None = None,
        batch_max_share: float = 1.0,
    ) -> None:
        """`batch`: the pool's queue of Batch rows (a replica built alone has an empty one of
        its own)."""
        self.env = env
        self.index = index
        self.slots = slots
        self.on_done = on_done
        self.scheduler = scheduler
        self.running: dict[Request, None] = {}
        self.batch = batch if batch is not None else BatchQueue()
        self.takes_batch = True  # the pool's to set: draws from its queue while serving
        self.batch_seqs = 0
        self.batch_max_seqs = batch_max_share * slots
        self._seed = seed
        self._keys: dict[str, int] = {}  # traffic source -> its service-draw key
        self._fixed_s = perf.service_s if isinstance(perf, FixedPerf) else None
        self._mean_s = perf.mean_service_s if isinstance(perf, ExponentialPerf) else 0.0
        self._busy_slot_s = 0.0
        self._busy_since_s = 0.0
        self.iterations = 0
        self.prompt_tokens_admitted = 0  # none of them cached: slot models have no KV cache
        self.cached_tokens_admitted = 0

    def _service_s(self, request: Request) -> float:
        """Keyed by the request's identity, not by this replica or the order of service: the
        same request needs the same work whichever replica serves it (common random numbers)."""
        if self._fixed_s is not None:
            return self._fixed_s
        key = self._keys.get(request.traffic)
        if key is None:
            key = self._keys[request.traffic] = word(self._seed, "service", request.traffic)
        u = unit(key, request.source_seq, request.turn << 16 | request.attempt)
        return -self._mean_s * math.log1p(-u)

    def _account(self) -> None:
        now = self.env.now
        self._busy_slot_s += len(self.running) * (now - self._busy_since_s)
        self._busy_since_s = now

    @property
    def waiting(self) -> int:
        return self.scheduler.waiting

    def waiting_requests(self) -> Iterator[Request]:
        return self.scheduler.waiting_requests()

    def enqueue(self, request: Request) -> None:
        if request.tier == BATCH:  # a replica built alone: its own queue stands for the pool's
            self.batch.add(request)
            self.offer_batch()
            return
        request.replica = self.index
        self.scheduler.add(request)
        if len(self.running) < self.slots:
            self._start_next()

    def _batch_open(self) -> bool:
        return (
            self.takes_batch
            and len(self.batch) > 0
            and self.batch_seqs < self.batch_max_seqs
            and len(self.running) < self.slots
        )

    def offer_batch(self) -> None:
        """Batch rows wait in the pool's queue: free slots take them while the share allows."""
        while not self.scheduler.waiting and self._batch_open():
            self._start_next()

    def expire_batch(self) -> None:
        """A job expired: its rows in service here stop now."""
        now = self.env.now
        for request in [r for r in self.running if r.traffic in self.batch.expired]:
            self._account()
            del self.running[request]
            self.batch_seqs -= 1
            request.status = STATUS_EXPIRED
            request.finished_s = now
            self.on_done(request)
        self.offer_batch()

    def _start_next(self) -> None:
        request = self.scheduler.head()
        if request is not None:
            self.scheduler.pop_head(request)
        elif self._batch_open():
            request = self.batch.pop()
            request.replica = self.index
            self.batch_seqs += 1
        else:
            return
        self._account()
        self.running[request] = None
        request.admitted_s = self.env.now
        self.prompt_tokens_admitted += request.prompt_tokens
        event = self.env.timeout(self._service_s(request), request)
        event.callbacks.append(self._on_service_end)

    def _on_service_end(self, event: simpy.Event) -> None:
        request = cast(Request, event.value)
        if request not in self.running:
            return  # the replica stopped since the service began
        self._account()
        del self.running[request]
        if request.tier == BATCH:
            self.batch_seqs -= 1
        self.iterations += 1
        request.status = STATUS_OK
        request.finished_s = request.first_token_s = self.env.now
        request.generated = request.output_tokens
        self._start_next()
        self.on_done(request)

    def stop(self) -> list[Request]:
        """The replica fails or is shut down: it hands back every request it holds (in
        service, then waiting); the service ends already scheduled are ignored."""
        self._account()
        held = [*self.running]
        self.running = {}
        scheduler = self.scheduler
        while (request := scheduler.head()) is not None:
            scheduler.pop_head(request)
            held.append(request)
        return held

    def busy_s_at(self, now: float) -> float:
        """Slot-seconds in use divided by slots: the time-average fraction of busy slots x time."""
        current = self._busy_slot_s + len(self.running) * (now - self._busy_since_s)
        return current / self.slots if not math.isnan(current) else 0.0
