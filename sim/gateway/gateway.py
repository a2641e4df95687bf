"""The service's front door: every attempt passes its checks in a fixed order, then the router
of its pool; every attempt's end, refused or served, takes the one outcome path.

The order (docs/gateway.md): unknown model id (404), prompt + output that no replica of the
pool can ever hold (400), then the front-door checks in the order given (budget 402, limits and
request cap 429, shedding 503), then the pool's router. A refused attempt gets its status and
`finished_s = now`. Every outcome is delivered as a scheduled event (zero delay), never as a
call back from inside a replica's iteration: the checks settle, the client hears of it (and
may retry at once: the replica is not in the middle of a step), and the recorder writes its row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sim.clock import Clock, call_later
from sim.replica.pool import ReplicaPool
from sim.request import Request
from sim.status import STATUS_BAD_REQUEST, STATUS_UNKNOWN_MODEL


class FrontDoorCheck(Protocol):
    """One check of the front door, owning its own state (buckets, spend, pool load views)."""

    def admit(self, request: Request, now_s: float) -> int:
        """0 to let the attempt pass, else the status that refuses it."""
        ...

    def settle(self, request: Request, now_s: float) -> None:
        """The attempt ended (`request.status`: 200 served, anything else not served): called
        once per attempt, whichever check refused it, if any."""
        ...


class Gateway:
    def __init__(self, env: Clock, record: Callable[[Request], None]) -> None:
        """`record` writes an ended attempt's row."""
        self.env = env
        self._record = record
        # (model id, tier) -> (pool, its block size, the most KV blocks a replica holds).
        self._routes: dict[tuple[str, str], tuple[ReplicaPool, int, int]] = {}
        self.checks: Sequence[FrontDoorCheck] = ()
        # (traffic source, retired model id) -> the model id its requests migrate to.
        self._moved: dict[tuple[str, str], str] = {}
        self._deliver_outcome = self._deliver  # one bound method, not one per outcome

    def route(self, model: str, tier: str, pool: ReplicaPool) -> None:
        """Serve (model id, tier) with `pool` (the first pool given for a pair keeps it)."""
        # Slot models hold no KV (capacity 0): nothing is too long for them.
        route = (pool, pool.config.block_size, pool.kv_capacity_blocks)
        self._routes.setdefault((model, tier), route)

    def pools_by_route(self) -> dict[tuple[str, str], ReplicaPool]:
        """(model id, tier) -> the pool that serves it."""
        return {key: route[0] for key, route in self._routes.items()}

    def retire(self, model: str, moves: dict[str, str]) -> None:
        """From now on `model` is unknown (404), except to the traffic sources in `moves`
        (source name -> the model id they migrate to)."""
        for key in [key for key in self._routes if key[0] == model]:
            del self._routes[key]
        self._moved.update({(source, model): to for source, to in moves.items()})

    def submit(self, request: Request) -> None:
        """An attempt arrives now."""
        route = self._routes.get((request.model, request.tier))
        if route is None:
            moved = self._moved.get((request.traffic, request.model))
            if moved is not None:
                request.model = moved
                route = self._routes.get((moved, request.tier))
        if route is None:
            self._refuse(request, STATUS_UNKNOWN_MODEL)
            return
        pool, block_size, most_blocks = route
        request.pool = pool.name
        if most_blocks and -(-(request.prompt_tokens + request.output_tokens) // block_size) > (
            most_blocks
        ):
            self._refuse(request, STATUS_BAD_REQUEST)
            return
        if self.checks:
            now = self.env.now
            for check in self.checks:
                status = check.admit(request, now)
                if status:
                    self._refuse(request, status)
                    return
        pool.submit(request)

    def finished(self, request: Request) -> None:
        """A replica's answer (the pools' `on_done`): delivered as a scheduled event."""
        call_later(self.env, 0.0, self._deliver_outcome, request)

    def _refuse(self, request: Request, status: int) -> None:
        request.status = status
        request.finished_s = self.env.now
        call_later(self.env, 0.0, self._deliver_outcome, request)

    def _deliver(self, request: Request) -> None:
        """The one outcome path: checks settle, the client decides, the row is written."""
        if self.checks:
            now = self.env.now
            for check in self.checks:
                check.settle(request, now)
        client = request.client
        if client is not None:
            client(request)
        self._record(request)
