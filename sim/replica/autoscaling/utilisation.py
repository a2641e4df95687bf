"""Scale on the serving replicas' mean busy fraction (time with an iteration in flight)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.replica.autoscaling.base import AutoscalingConfigBase, AutoscalingPolicy, FleetSignals


class UtilisationConfig(AutoscalingConfigBase):
    policy: Literal["utilisation"]
    target: float = Field(0.7, gt=0, le=1, description="Mean busy fraction aimed at, 0..1")


class UtilisationPolicy(AutoscalingPolicy):
    name = "utilisation"
    Config = UtilisationConfig

    def signal(self, signals: FleetSignals) -> float:
        return signals.utilisation
