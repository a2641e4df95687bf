"""Scale on the serving replicas' mean share of KV-cache blocks held by running requests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.replica.autoscaling.base import AutoscalingConfigBase, AutoscalingPolicy, FleetSignals


class KVUseConfig(AutoscalingConfigBase):
    policy: Literal["kv_use"]
    target: float = Field(0.6, gt=0, le=1, description="Mean KV-block use aimed at, 0..1")


class KVUsePolicy(AutoscalingPolicy):
    name = "kv_use"
    Config = KVUseConfig

    def signal(self, signals: FleetSignals) -> float:
        return signals.kv_use
