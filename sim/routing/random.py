"""Uniformly random replica: the baseline every other policy must beat."""

from __future__ import annotations

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RandomInts, RoutingPolicy
from sim.routing.config import RandomConfig


class RandomPolicy(RoutingPolicy):
    name = "random"
    Config = RandomConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        self._ints = RandomInts(rng, len(self.serving))

    def choose(self, request: Request) -> int:
        return self.serving[self._ints.draw()]

    def serving_changed(self, replica: int, serving: bool) -> None:
        self._ints = RandomInts(self.rng, max(len(self.serving), 1))
