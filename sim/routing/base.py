"""What every routing policy sees and decides: one replica index per request."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import ClassVar, Protocol

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request


class PoolLoad:
    """The router's view of its replicas' load, updated as requests are routed and finish.

    Outstanding tokens of a request are its prompt plus output tokens, counted from routing
    to completion: what a gateway can know without looking inside a replica.
    """

    __slots__ = ("outstanding_requests", "outstanding_tokens")

    def __init__(self, replicas: int) -> None:
        self.outstanding_tokens = [0] * replicas
        self.outstanding_requests = [0] * replicas

    def add(self, replica: int, request: Request) -> None:
        self.outstanding_tokens[replica] += request.prompt_tokens + request.output_tokens
        self.outstanding_requests[replica] += 1

    def remove(self, replica: int, request: Request) -> None:
        self.outstanding_tokens[replica] -= request.prompt_tokens + request.output_tokens
        self.outstanding_requests[replica] -= 1


class RandomInts:
    """Uniform replica indices drawn from a numpy Generator in batches (one C call per 4096)."""

    __slots__ = ("_buffer", "_high", "_next", "_rng")

    def __init__(self, rng: np.random.Generator, high: int) -> None:
        self._rng, self._high = rng, high
        self._buffer: list[int] = []
        self._next = 0

    def draw(self) -> int:
        if self._next == len(self._buffer):
            self._buffer = self._rng.integers(0, self._high, 4096).tolist()
            self._next = 0
        value = self._buffer[self._next]
        self._next += 1
        return value


def lowest(values: list[int], serving: list[int]) -> int:
    """The serving replica with the smallest value (the lowest index on ties)."""
    if len(serving) == len(values):
        return values.index(min(values))
    return min(serving, key=values.__getitem__)


class ReplicaState(Protocol):
    """What a router may read of a replica (never write)."""

    @property
    def waiting(self) -> int: ...

    @property
    def running(self) -> Sized: ...

    @property
    def kv_used_blocks(self) -> int: ...


class PoolView:
    """The router's read-only view of its pool: load counters, replica states, and which
    replica slots are serving (`serving`: their indices in increasing order; the pool keeps
    both up to date as replicas start, drain, fail and stop)."""

    def __init__(
        self, load: PoolLoad, replicas: Sequence[ReplicaState], kv_capacity_blocks: int
    ) -> None:
        self.load = load
        self.replicas = replicas
        self.kv_capacity_blocks = kv_capacity_blocks
        slots = len(load.outstanding_tokens)
        self.serving = list(range(slots))
        self.is_serving = [True] * slots


class RoutingPolicy:
    """A policy picks the replica of a pool for each request; the pool applies the choice."""

    name: ClassVar[str]
    Config: ClassVar[type[StrictModel]]

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        self.config = config
        self.pool = pool
        self.load = pool.load
        self.replicas = len(pool.load.outstanding_tokens)  # slots, serving or not
        self.serving = pool.serving  # the pool updates this list in place
        self.rng = rng

    def choose(self, request: Request) -> int:
        """A serving replica's index (the pool routes only while one serves)."""
        raise NotImplementedError

    def serving_changed(self, replica: int, serving: bool) -> None:
        """A replica joined (`serving`) or left the serving set: policies that keep state per
        replica update it here."""

    def warnings(self) -> list[str]:
        """What the run should tell its user about how this policy was used (after the run)."""
        return []
