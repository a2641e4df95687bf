"""What every autoscaling policy sees and decides: how many replicas a pool wants.

A policy measures one signal against its `target` and answers with the Kubernetes HPA rule:
wanted = ceil(replicas counted x signal / target), unchanged while the ratio is within
`tolerance` of 1. The pool's autoscaler (`sim.replica.autoscaling.scaler`) applies the bounds,
the scale-down delay and the cold start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.units import PositiveSeconds, Seconds


@dataclass(frozen=True)
class FleetSignals:
    """A pool's signals over the last decision interval, among its serving replicas."""

    serving: int  # replicas serving now
    utilisation: float  # mean busy fraction of the replicas serving during the interval, 0..1
    queue_s: float  # mean queueing delay of the attempts admitted during the interval, s
    kv_use: float  # mean share of KV blocks in use now, 0..1


class AutoscalingConfigBase(StrictModel):
    target: float = Field(gt=0, description="Value of the policy's signal aimed at")
    min_replicas: int = Field(1, ge=1, description="Fewest replicas held (starting or serving)")
    max_replicas: int = Field(ge=1, description="Most replicas held (starting or serving)")
    decision_interval_s: PositiveSeconds = Field(
        60.0, description="Time between two scaling decisions, s"
    )
    scale_down_delay_s: Seconds = Field(
        300.0,
        ge=0,
        description="Scale down only to the most replicas wanted over this past window, s",
    )
    cold_start_s: Seconds = Field(
        180.0, ge=0, description="From a scale-up decision until the new replica serves, s"
    )
    tolerance: float = Field(
        0.1, ge=0, lt=1, description="No change while signal / target is within 1 +- this"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfigBase:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must not exceed "
                f"max_replicas ({self.max_replicas})"
            )
        return self


class AutoscalingPolicy:
    name: ClassVar[str]
    Config: ClassVar[type[AutoscalingConfigBase]]

    def __init__(self, config: AutoscalingConfigBase) -> None:
        self.config = config
        self.target = config.target

    def signal(self, signals: FleetSignals) -> float:
        raise NotImplementedError

    def wanted(self, signals: FleetSignals) -> int:
        """Replicas wanted for this interval's signal (before bounds and scale-down delay)."""
        ratio = self.signal(signals) / self.target
        if abs(ratio - 1.0) <= self.config.tolerance:
            return signals.serving
        return math.ceil(signals.serving * ratio - 1e-9)
