"""Open-loop clients: requests arrive on a schedule whatever happens to earlier ones.

Arrival times, lengths and tiers are drawn in vectorised chunks, each from its own stream, so
changing one distribution leaves the others' draws as they were.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sim.clock import call_later
from sim.workload.arrivals import arrival_chunks
from sim.workload.config import Traffic
from sim.workload.source import SourceContext, TierDraw, user_key


class OpenLoopSource:
    def __init__(self, traffic: Traffic, context: SourceContext) -> None:
        self.env = context.env
        self.traffic = traffic
        self._context = context
        self._client = context.client(traffic)
        assert traffic.arrivals is not None
        assert traffic.prompt_tokens is not None and traffic.output_tokens is not None
        self._prompt_tokens, self._output_tokens = traffic.prompt_tokens, traffic.output_tokens
        self._chunks: Iterator[np.ndarray] = arrival_chunks(
            traffic.arrivals, context.rng(traffic, "arrivals"), context.duration_s
        )
        self._prompt_rng = context.rng(traffic, "prompt_tokens")
        self._output_rng = context.rng(traffic, "output_tokens")
        self._user_rng = context.rng(traffic, "user")
        self._users = context.users if traffic.affinity == "user" else 0
        self._user_index: list[int] = []
        self._tier_draw = TierDraw(traffic, context)
        self._remaining = traffic.max_requests if traffic.max_requests is not None else -1
        self._times: list[float] = []
        self._prompts: list[int] = []
        self._outputs: list[int] = []
        self._tiers: list[str] = []
        self._i = 0
        self.sent = 0
        self.stopped_s: float | None = None  # when max_requests stopped arrivals early

    def start(self) -> None:
        self._schedule_next()

    def _refill(self) -> bool:
        times = next(self._chunks, None)
        if times is None:
            return False
        n = len(times)
        self._times = times.tolist()
        self._prompts = self._prompt_tokens.sample(self._prompt_rng, n).tolist()
        self._outputs = self._output_tokens.sample(self._output_rng, n).tolist()
        if self._users:
            self._user_index = self._user_rng.integers(0, self._users, n).tolist()
        self._tiers = self._tier_draw.draw(n).tolist()
        self._i = 0
        return True

    def _schedule_next(self) -> None:
        if self._remaining == 0:
            return
        if self._i == len(self._times) and not self._refill():
            return
        call_later(self.env, self._times[self._i] - self.env.now, self._arrive)

    def _arrive(self, _: object) -> None:
        i = self._i
        self._i = i + 1
        self._remaining -= 1
        self.sent += 1
        if self._remaining == 0:
            self.stopped_s = self.env.now
        traffic = self.traffic
        request = self._context.request(traffic, self._tiers[i], self._prompts[i], self._outputs[i])
        request.source_seq = self.sent - 1
        if self._users:
            request.affinity_key = user_key(traffic, self._user_index[i])
        self._schedule_next()
        self._client.send(request)
