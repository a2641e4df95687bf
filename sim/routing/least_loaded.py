"""The serving replica with the fewest outstanding tokens (lowest index on ties)."""

from __future__ import annotations

from typing import Literal

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import RoutingPolicy, lowest


class LeastLoadedConfig(StrictModel):
    policy: Literal["least_loaded"]


class LeastLoadedPolicy(RoutingPolicy):
    name = "least_loaded"
    Config = LeastLoadedConfig

    def choose(self, request: Request) -> int:
        return lowest(self.load.outstanding_tokens, self.serving)
