"""Autoscaling policies, one file each, registered here under their YAML name."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from sim.replica.autoscaling.base import AutoscalingPolicy
from sim.replica.autoscaling.kv_use import KVUsePolicy
from sim.replica.autoscaling.queueing_delay import QueueingDelayPolicy
from sim.replica.autoscaling.utilisation import UtilisationPolicy

AUTOSCALERS: dict[str, type[AutoscalingPolicy]] = {
    policy.name: policy for policy in (UtilisationPolicy, QueueingDelayPolicy, KVUsePolicy)
}

# The YAML `autoscaling:` mapping: one config model per policy, told apart by `policy`.
AutoscalingConfig: Any = Annotated[
    Union[tuple(policy.Config for policy in AUTOSCALERS.values())],  # noqa: UP007
    Field(discriminator="policy"),
]
