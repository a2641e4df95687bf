"""Serving replicas in turn, whatever their load."""

from __future__ import annotations

from sim.request import Request
from sim.routing.base import RoutingPolicy
from sim.routing.config import RoundRobinConfig


class RoundRobinPolicy(RoutingPolicy):
    name = "round_robin"
    Config = RoundRobinConfig
    _next = 0

    def choose(self, request: Request) -> int:
        serving = self.serving
        position = self._next % len(serving)
        self._next = position + 1
        return serving[position]
