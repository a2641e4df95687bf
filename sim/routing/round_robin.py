"""Serving replicas in turn, whatever their load."""

from __future__ import annotations

from typing import Literal

from sim.config_base import StrictModel
from sim.request import Request
from sim.routing.base import RoutingPolicy


class RoundRobinConfig(StrictModel):
    policy: Literal["round_robin"]


class RoundRobinPolicy(RoutingPolicy):
    name = "round_robin"
    Config = RoundRobinConfig
    _next = 0

    def choose(self, request: Request) -> int:
        serving = self.serving
        position = self._next % len(serving)
        self._next = position + 1
        return serving[position]
