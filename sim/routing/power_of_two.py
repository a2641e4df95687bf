"""Two distinct serving replicas at random, the less loaded of the two (Mitzenmacher's power of two
choices)."""

from __future__ import annotations

import numpy as np

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import PoolView, RandomInts, RoutingPolicy
from sim.routing.config import PowerOfTwoConfig


class PowerOfTwoPolicy(RoutingPolicy):
    name = "power_of_two"
    Config = PowerOfTwoConfig

    def __init__(self, config: StrictModel, pool: PoolView, rng: np.random.Generator) -> None:
        super().__init__(config, pool, rng)
        self._draw_among(len(self.serving))

    def _draw_among(self, replicas: int) -> None:
        self._first = RandomInts(self.rng, max(replicas, 1))
        self._offset = RandomInts(self.rng, max(replicas - 1, 1))

    def choose(self, request: Request) -> int:
        serving = self.serving
        first = self._first.draw()
        if len(serving) == 1:
            return serving[first]
        second = serving[(first + 1 + self._offset.draw()) % len(serving)]
        first = serving[first]
        tokens = self.load.outstanding_tokens
        return first if tokens[first] <= tokens[second] else second

    def serving_changed(self, replica: int, serving: bool) -> None:
        self._draw_among(len(self.serving))
