"""A traffic source's client: sends its logical requests, hears each attempt's outcome (a
scheduled event from the gateway) and retries 429 and 503 after a backoff, up to
`max_attempts`; any other outcome, or the last attempt's refusal, is final.

Each retry is a new attempt (a new `request_id`, `attempt` + 1, the same `logical_id`) arriving
at the gateway at the time it is sent. Its wait is a keyed draw of its own (the source, the
logical request's number and turn in the source, the retry's number: `sim/rng.py`, `unit`),
never from the workload's streams: retries leave every other draw as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.clock import Clock, call_later
from sim.request import Request
from sim.rng import unit, word
from sim.status import RETRYABLE
from sim.workload.retry import RetryConfig


class Client:
    def __init__(
        self,
        env: Clock,
        seed: int,
        traffic: str,
        retry: RetryConfig,
        submit: Callable[[Request], None],
        next_id: Callable[[], int],
        on_final: Callable[[Request], None] | None = None,
    ) -> None:
        """`on_final` hears the final attempt of each logical request (served or not)."""
        self.env = env
        self._key = word(seed, "retry", traffic)
        self._retry = retry
        self._max_attempts = retry.max_attempts
        self._submit = submit
        self._next_id = next_id
        self._on_final = on_final
        self._outcome_of = self._outcome  # one bound method, not one per request
        self._resend_at = self._resend
        self._waits_s: dict[int, float] = {}  # logical id -> its last wait (decorrelated jitter)

    def send(self, request: Request) -> None:
        """A logical request's first attempt, arriving now."""
        request.client = self._outcome_of
        self._submit(request)

    def _outcome(self, request: Request) -> None:
        if request.status in RETRYABLE and request.attempt < self._max_attempts:
            call_later(self.env, self._wait_s(request), self._resend_at, request)
            return
        request.final = True
        if self._waits_s:  # only decorrelated jitter keeps waits
            self._waits_s.pop(request.logical_id, None)
        if self._on_final is not None:
            self._on_final(request)

    def _wait_s(self, request: Request) -> float:
        retry = request.attempt  # attempt 1 refused: retry 1 comes next
        # Keyed by the logical request's identity in its source: its number (a session's),
        # its turn, and the retry's number.
        uniform = unit(self._key, request.source_seq, request.turn << 16 | retry)
        previous_s = self._waits_s.get(request.logical_id, 0.0)
        wait_s = self._retry.wait_s(retry, previous_s, uniform)
        if self._retry.jitter == "decorrelated":
            self._waits_s[request.logical_id] = wait_s
        return wait_s

    def _resend(self, previous: Request) -> None:
        request = Request(
            self._next_id(),
            previous.traffic,
            previous.account,
            previous.model,
            previous.tier,
            self.env.now,
            previous.prompt_tokens,
            previous.output_tokens,
            previous.block_runs,
            previous.attempt + 1,
            previous.logical_id,
        )
        request.affinity_key = previous.affinity_key
        request.session_id = previous.session_id
        request.turn = previous.turn
        request.source_seq = previous.source_seq
        request.client = self._outcome_of
        self._submit(request)
