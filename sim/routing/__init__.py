"""Routing policies, one file each, registered here under their YAML name."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from sim.routing.affinity import AffinityPolicy
from sim.routing.base import RoutingPolicy
from sim.routing.cache_aware import CacheAwarePolicy
from sim.routing.least_loaded import LeastLoadedPolicy
from sim.routing.power_of_two import PowerOfTwoPolicy
from sim.routing.random import RandomPolicy
from sim.routing.round_robin import RoundRobinPolicy
from sim.routing.weighted_scorer import WeightedScorerPolicy

POLICIES: dict[str, type[RoutingPolicy]] = {
    policy.name: policy
    for policy in (
        RandomPolicy,
        RoundRobinPolicy,
        LeastLoadedPolicy,
        PowerOfTwoPolicy,
        AffinityPolicy,
        CacheAwarePolicy,
        WeightedScorerPolicy,
    )
}

# The YAML `routing:` mapping: one config model per policy, told apart by `policy`.
RoutingConfig: Any = Annotated[
    Union[tuple(policy.Config for policy in POLICIES.values())],  # noqa: UP007
    Field(discriminator="policy"),
]
