"""Closed-loop conversations: a session sends its next turn only after the previous answer plus
a think time. Turn t's prompt is the application's system prompt + the whole history (earlier
messages and answers) + a new message, so its block ids extend those of turn t-1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sim.clock import call_later
from sim.request import Request
from sim.rng import EntityStreams, choice_cdf, choose
from sim.status import STATUS_OK
from sim.workload.arrivals import arrival_chunks
from sim.workload.chains import Runs, session_owner, system_owner
from sim.workload.config import Traffic
from sim.workload.source import SourceContext, TierDraw, user_key


class _Buffer:
    """Draws from one distribution in batches (one numpy call per batch), 16 values first and
    twice as many each time up to 4096: thousands of small sources hold little."""

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._values: list = []
        self._batch = 16

    def next(self) -> float:
        if not self._values:
            self._values = self._draw(self._batch).tolist()
            self._values.reverse()
            self._batch = min(self._batch * 2, 4096)
        return self._values.pop()


class _Session:
    """One conversation. Its turns' messages, answers, tiers and think times are drawn at its start
    from its own stream (keyed by source and session number): the same whatever the routing or
    fleet, however the sessions interleave."""

    __slots__ = (
        "context_tokens",
        "key",
        "messages",
        "outputs",
        "owner",
        "system_run",
        "thinks_s",
        "tiers",
        "turns",
        "turns_left",
        "uid",
        "user",
    )

    def __init__(
        self,
        uid: int,
        user: int,
        turns: int,
        system_run: Runs,
        system_tokens: int,
        draws: tuple[list[int], list[int], list[str], list[float]],
        owner: int,
    ):
        self.uid = uid
        self.user = user
        self.turns_left = turns
        self.turns = 0  # sent so far
        self.system_run = system_run  # the shared system prompt's full blocks
        self.context_tokens = system_tokens
        self.key = f"s{uid}"
        self.owner = owner  # its own blocks' owner (`session_owner`)
        self.messages, self.outputs, self.tiers, self.thinks_s = draws


class SessionSource:
    def __init__(self, traffic: Traffic, context: SourceContext) -> None:
        assert traffic.arrivals is not None and traffic.prompt_tokens is not None
        assert traffic.output_tokens is not None and traffic.sessions is not None
        config = traffic.sessions
        block_size = context.block_size
        self.env = context.env
        self.traffic = traffic
        self.config = config
        self.block_size = block_size
        self._context = context
        self._client = context.client(traffic, self._answered)
        name = traffic.name
        self._starts: Iterator[np.ndarray] = arrival_chunks(
            traffic.arrivals, context.rng(traffic, "arrivals"), context.duration_s
        )
        rng = context.rng(traffic, "sessions")
        variant_tokens = config.system_prompt_tokens.sample(rng, config.system_prompts).tolist()
        self._system = [
            (
                tokens,
                ((system_owner(name, v), 0, tokens // block_size),) if tokens >= block_size else (),
            )
            for v, tokens in enumerate(variant_tokens)
        ]
        ranks = np.arange(1, config.system_prompts + 1, dtype=float)
        weights = (
            ranks**-config.zipf_exponent if config.system_prompt_choice == "zipf" else ranks * 0 + 1
        )
        variant_cdf = choice_cdf(weights / weights.sum())
        self._variant = _Buffer(lambda n: choose(rng, variant_cdf, n))
        self._user = _Buffer(lambda n: rng.integers(0, context.users, n))
        self._turns = _Buffer(lambda n: config.turns.sample(rng, n))
        self._turn_streams = EntityStreams(context.seed, "traffic", name, "session turns")
        # Each session's turns are drawn from its laws through compiled samplers (`list_sampler`).
        self._messages = traffic.prompt_tokens.list_sampler()
        self._answers = traffic.output_tokens.list_sampler()
        self._thinks = config.think_time_s.list_sampler()
        self._max_context_tokens = config.max_context_tokens
        self._tier = TierDraw(traffic, context)
        self._affinity = traffic.affinity
        self._remaining = traffic.max_requests if traffic.max_requests is not None else -1
        self._times: list[float] = []
        self._i = 0
        self._live: dict[int, _Session] = {}  # sessions waiting for an answer or thinking
        self.sessions = 0  # started
        self.completed = 0  # every turn served (or the context limit reached)
        self.abandoned = 0  # a turn finally refused: the session gave up
        self.sent = 0
        self.stopped_s: float | None = None  # when max_requests stopped arrivals early

    def start(self) -> None:
        self._schedule_start()

    def _schedule_start(self) -> None:
        if self._i == len(self._times):
            chunk = next(self._starts, None)
            if chunk is None:
                return
            self._times, self._i = chunk.tolist(), 0
        call_later(self.env, self._times[self._i] - self.env.now, self._start_session)

    def _start_session(self, _: object) -> None:
        self._i += 1
        self._schedule_start()
        tokens, system_run = self._system[int(self._variant.next())]
        uid, turns = self.sessions, int(self._turns.next())
        session = _Session(
            uid,
            int(self._user.next()),
            turns,
            system_run,
            tokens,
            self._draw_turns(uid, turns),
            session_owner(self.traffic.name, uid),
        )
        self.sessions += 1
        self._live[session.uid] = session
        self._send_turn(session)

    def _draw_turns(
        self, uid: int, turns: int
    ) -> tuple[list[int], list[int], list[str], list[float]]:
        """The session's messages, answers, tiers and think times, one per turn."""
        rng = self._turn_streams.at(uid)
        return (
            self._messages.sample(rng, turns),
            self._answers.sample(rng, turns),
            self._tier.draw_list(turns, rng),
            self._thinks.sample(rng, turns),
        )

    def _send_turn(self, session: _Session) -> None:
        if self._remaining == 0:
            del self._live[session.uid]  # cut by max_requests: neither completed nor abandoned
            return
        turn = session.turns
        message = session.messages[turn]
        output = session.outputs[turn]
        prompt = session.context_tokens + message
        if prompt > self._max_context_tokens:
            del self._live[session.uid]
            self.completed += 1
            return
        self._remaining -= 1
        self.sent += 1
        if self._remaining == 0:
            self.stopped_s = self.env.now
        session.turns_left -= 1
        # The system prompt's full blocks, then the session's own blocks (history, the new
        # message, and the answer, which is cached once the request finishes).
        first = session.system_run[0][2] if session.system_run else 0
        full = (prompt + output) // self.block_size
        own = ((session.owner, first, full),) if full > first else ()
        runs = (*session.system_run, *own)
        traffic = self.traffic
        request = self._context.request(traffic, session.tiers[turn], prompt, output, runs)
        session.turns += 1
        request.session_id = request.source_seq = session.uid
        request.turn = session.turns
        if self._affinity == "session":
            request.affinity_key = session.key
        elif self._affinity == "user":
            request.affinity_key = user_key(traffic, session.user)
        self._client.send(request)

    def _answered(self, request: Request) -> None:
        """A turn's final outcome: think and send the next turn, or end the session."""
        session = self._live[request.session_id]
        if request.status != STATUS_OK:
            del self._live[session.uid]
            self.abandoned += 1
        elif session.turns_left <= 0:
            del self._live[session.uid]
            self.completed += 1
        else:
            session.context_tokens = request.prompt_tokens + request.output_tokens
            think_s = session.thinks_s[session.turns - 1]
            call_later(self.env, think_s, self._send_turn, session)
