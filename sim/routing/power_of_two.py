"""Two distinct replicas at random, the less loaded of the two (Mitzenmacher's power of two
choices)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RandomInts, RoutingPolicy


class PowerOfTwoConfig(StrictModel):
    policy: Literal["power_of_two"]


class PowerOfTwoPolicy(RoutingPolicy):
    name = "power_of_two"
    Config = PowerOfTwoConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        self._first = RandomInts(rng, self.replicas)
        self._offset = RandomInts(rng, max(self.replicas - 1, 1))

    def choose(self, request: Request) -> int:
        first = self._first.draw()
        if self.replicas == 1:
            return first
        second = (first + 1 + self._offset.draw()) % self.replicas
        tokens = self.load.outstanding_tokens
        return first if tokens[first] <= tokens[second] else second
