"""A replica as c parallel servers: each request holds one of `max_num_seqs` slots for a service
time drawn independently of the batch (`fixed` or `exponential` perf models).

Not a GPU model: it makes the queueing core checkable against M/M/c and M/D/c theory. The whole
answer is ready when service ends, so the first token and the finish coincide.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import cast

import simpy

from sim.perf.config import ExponentialPerf, FixedPerf
from sim.request import TIER_RANK, Request
from sim.rng import unit, word
from sim.status import STATUS_OK


class SlotReplica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        perf: FixedPerf | ExponentialPerf,
        slots: int,
        seed: int,
        on_done: Callable[[Request], None],
    ) -> None:
        self.env = env
        self.index = index
        self.slots = slots
        self.on_done = on_done
        self.queues: tuple[deque[Request], ...] = (deque(), deque(), deque())
        self.waiting = 0
        self.running: dict[Request, None] = {}
        self._seed = seed
        self._keys: dict[str, int] = {}  # traffic source -> its service-draw key
        self._fixed_s = perf.service_s if isinstance(perf, FixedPerf) else None
        self._mean_s = perf.mean_service_s if isinstance(perf, ExponentialPerf) else 0.0
        self._busy_slot_s = 0.0
        self._busy_since_s = 0.0
        self.kv = None
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

    def enqueue(self, request: Request) -> None:
        request.replica = self.index
        if len(self.running) < self.slots:
            self._start(request)
        else:
            self.queues[TIER_RANK[request.tier]].append(request)
            self.waiting += 1

    def _start(self, request: Request) -> None:
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
        for queue in self.queues:
            if queue:
                self.waiting -= 1
                self._start(queue.popleft())
                break
        self.on_done(request)

    def stop(self) -> list[Request]:
        """The replica fails or is shut down: it hands back every request it holds (in
        service, then waiting); the service ends already scheduled are ignored."""
        self._account()
        held = [*self.running]
        for queue in self.queues:
            held.extend(queue)
        self.running = {}
        self.queues = (deque(), deque(), deque())
        self.waiting = 0
        return held

    def busy_s_at(self, now: float) -> float:
        """Slot-seconds in use divided by slots: the time-average fraction of busy slots x time."""
        current = self._busy_slot_s + len(self.running) * (now - self._busy_since_s)
        return current / self.slots if not math.isnan(current) else 0.0
