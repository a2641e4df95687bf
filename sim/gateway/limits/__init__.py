"""Limit policies, one file each, registered here under their YAML name."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from sim.gateway.limits.adaptive import AdaptiveLimitsConfig, AdaptiveLimitsPolicy
from sim.gateway.limits.base import LimitPolicy
from sim.gateway.limits.fixed import FixedLimitsPolicy
from sim.gateway.limits.none import NoLimitsPolicy

POLICIES: dict[str, type[LimitPolicy]] = {
    policy.name: policy for policy in (AdaptiveLimitsPolicy, FixedLimitsPolicy, NoLimitsPolicy)
}

# A `limits:` mapping: one config model per policy, told apart by `policy`.
LimitsConfig: Any = Annotated[
    Union[tuple(policy.Config for policy in POLICIES.values())],  # noqa: UP007
    Field(discriminator="policy"),
]


def default_limits() -> AdaptiveLimitsConfig:
    return AdaptiveLimitsConfig(policy="adaptive")


def build_policy(config: Any, ceiling_multiplier: float) -> LimitPolicy:
    policy: LimitPolicy = POLICIES[config.policy](config, ceiling_multiplier)
    return policy
