"""Replayed traffic: requests at a trace's arrival times, with its lengths and prefix blocks."""

from __future__ import annotations

import numpy as np

from sim.clock import call_later
from sim.workload.chains import trace_runs
from sim.workload.config import Traffic
from sim.workload.source import SourceContext, TierDraw, user_key
from sim.workload.traces import replayed_trace


class TraceSource:
    def __init__(self, traffic: Traffic, context: SourceContext) -> None:
        assert traffic.trace is not None
        self.env = context.env
        self.traffic = traffic
        self.block_size = context.block_size
        self._context = context
        self._client = context.client(traffic)
        trace = replayed_trace(traffic.trace, context.duration_s, traffic.max_requests)
        count = int(np.searchsorted(trace.arrival_s, context.duration_s, side="left"))
        if traffic.max_requests is not None:
            count = min(count, traffic.max_requests)
        self.trace = trace
        self.count = count
        self._tiers = TierDraw(traffic, context).draw(count).tolist()
        self._users = (
            context.rng(traffic, "user").integers(0, context.users, count).tolist()
            if traffic.affinity == "user"
            else None
        )
        self._arrivals = trace.arrival_s[:count].tolist()
        self._prompts = trace.prompt_tokens[:count].tolist()
        self._outputs = trace.output_tokens[:count].tolist()
        self._i = 0
        self.sent = 0
        # Arrivals stop early when max_requests cuts the trace, or when the whole (unlooped)
        # trace is replayed before duration_s.
        self._ends_early = count == traffic.max_requests or (
            not traffic.trace.loop and count == len(trace)
        )
        self.stopped_s: float | None = None

    def start(self) -> None:
        self._schedule_next()

    def _schedule_next(self) -> None:
        if self._i < self.count:
            call_later(self.env, self._arrivals[self._i] - self.env.now, self._arrive)

    def _arrive(self, _: object) -> None:
        i = self._i
        self._i += 1
        self.sent += 1
        if self._i == self.count and self._ends_early:
            self.stopped_s = self.env.now
        traffic, trace = self.traffic, self.trace
        runs = None
        if trace.block_ids is not None and trace.block_size is not None:
            runs = trace_runs(
                traffic.name,
                trace.block_ids[i],
                trace.block_size,
                self._prompts[i],
                self.block_size,
            )
        request = self._context.request(
            traffic, self._tiers[i], self._prompts[i], self._outputs[i], runs
        )
        request.source_seq = i
        if self._users is not None:
            request.affinity_key = user_key(traffic, self._users[i])
        self._schedule_next()
        self._client.send(request)
