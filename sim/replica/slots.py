"""A replica as c parallel servers: each request holds one of `max_num_seqs` slots for a service
time drawn independently of the batch (`fixed` or `exponential` perf models).

Not a GPU model: it makes the queueing core checkable against M/M/c and M/D/c theory. The whole
answer is ready when service ends, so the first token and the finish coincide. It holds no KV
cache (its KV levels are 0); its scheduler orders the waiting requests as on a GPU replica, and
never preempts (the pool refuses a policy that would).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import cast

import simpy

from sim.perf.config import ExponentialPerf, FixedPerf
from sim.replica.schedulers.base import Scheduler
from sim.request import Request
from sim.rng import unit, word
from sim.status import STATUS_OK


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
    ) -> None:
        self.env = env
        self.index = index
        self.slots = slots
        self.on_done = on_done
        self.scheduler = scheduler
        self.running: dict[Request, None] = {}
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
        request.replica = self.index
        self.scheduler.add(request)
        if len(self.running) < self.slots:
            self._start_next()

    def _start_next(self) -> None:
        request = self.scheduler.head()
        if request is None:
            return
        self.scheduler.pop_head(request)
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
