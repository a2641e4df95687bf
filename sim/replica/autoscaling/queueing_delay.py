"""Scale on the mean queueing delay (arrival to admission) of the attempts admitted lately."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.replica.autoscaling.base import AutoscalingConfigBase, AutoscalingPolicy, FleetSignals
from sim.units import PositiveSeconds


class QueueingDelayConfig(AutoscalingConfigBase):
    policy: Literal["queueing_delay"]
    target: PositiveSeconds = Field(0.5, description="Mean queueing delay aimed at, s")


class QueueingDelayPolicy(AutoscalingPolicy):
    name = "queueing_delay"
    Config = QueueingDelayConfig

    def signal(self, signals: FleetSignals) -> float:
        return signals.queue_s
