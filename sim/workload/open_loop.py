"""Open-loop clients: requests arrive on a schedule whatever happens to earlier ones.

Arrival times, lengths and tiers are drawn in vectorised chunks, each from its own stream, so
changing one distribution leaves the others' draws as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import simpy

from sim.clock import Wakeup, call_later
from sim.request import Request
from sim.rng import stream
from sim.scenario import Traffic
from sim.workload.arrivals import arrival_chunks


class OpenLoopSource:
    def __init__(
        self,
        env: simpy.Environment,
        traffic: Traffic,
        tier_override: str | None,
        users: int,
        seed: int,
        duration_s: float,
        next_id: Callable[[], int],
        submit: Callable[[Request], None],
    ) -> None:
        self.env = env
        self.traffic = traffic
        self._next_id = next_id
        self._submit = submit
        assert traffic.arrivals is not None
        assert traffic.prompt_tokens is not None and traffic.output_tokens is not None
        self._prompt_tokens, self._output_tokens = traffic.prompt_tokens, traffic.output_tokens
        name = traffic.name
        self._chunks: Iterator[np.ndarray] = arrival_chunks(
            traffic.arrivals, stream(seed, "traffic", name, "arrivals"), duration_s
        )
        self._prompt_rng = stream(seed, "traffic", name, "prompt_tokens")
        self._output_rng = stream(seed, "traffic", name, "output_tokens")
        self._tier_rng = stream(seed, "traffic", name, "tier")
        self._user_rng = stream(seed, "traffic", name, "user")
        self._users = users if traffic.affinity == "user" else 0
        self._user_index: list[int] = []
        self._tiers = [tier_override] if tier_override else list(traffic.tier_mix)
        shares = (
            np.array([traffic.tier_mix[t] for t in traffic.tier_mix]) if not tier_override else None
        )
        self._tier_shares = None if shares is None or len(shares) == 1 else shares / shares.sum()
        self._remaining = traffic.max_requests if traffic.max_requests is not None else -1
        self._times: list[float] = []
        self._prompts: list[int] = []
        self._outputs: list[int] = []
        self._tier_index: list[int] = []
        self._i = 0
        self.sent = 0

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
        if self._tier_shares is None:
            self._tier_index = [0] * n
        else:
            self._tier_index = self._tier_rng.choice(
                len(self._tier_shares), size=n, p=self._tier_shares
            ).tolist()
        self._i = 0
        return True

    def _schedule_next(self) -> None:
        if self._remaining == 0:
            return
        if self._i == len(self._times) and not self._refill():
            return
        call_later(self.env, self._times[self._i] - self.env.now, self._arrive)

    def _arrive(self, event: Wakeup) -> None:
        i = self._i
        self._i = i + 1
        self._remaining -= 1
        self.sent += 1
        traffic = self.traffic
        request = Request(
            self._next_id(),
            traffic.name,
            traffic.account,
            traffic.model,
            self._tiers[self._tier_index[i]],
            self.env.now,
            self._prompts[i],
            self._outputs[i],
        )
        if self._users:
            request.affinity_key = f"{traffic.account}/u{self._user_index[i]}"
        self._schedule_next()
        self._submit(request)
