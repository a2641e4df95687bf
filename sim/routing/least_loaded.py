"""The serving replica with the fewest outstanding tokens (lowest index on ties)."""

from __future__ import annotations

from sim.request import Request
from sim.routing.base import RoutingPolicy, lowest
from sim.routing.config import LeastLoadedConfig


class LeastLoadedPolicy(RoutingPolicy):
    name = "least_loaded"
    Config = LeastLoadedConfig

    def choose(self, request: Request) -> int:
        return lowest(self.load.outstanding_tokens, self.serving)
