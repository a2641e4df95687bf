"""Replica schedulers, one file each, registered here under their YAML name."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from sim.replica.schedulers.base import Scheduler
from sim.replica.schedulers.fcfs import Fcfs
from sim.replica.schedulers.preemptive_priority import PreemptivePriority
from sim.replica.schedulers.strict_priority import StrictPriority
from sim.replica.schedulers.weighted_fair import WeightedFair

SCHEDULERS: dict[str, type[Scheduler]] = {
    policy.name: policy for policy in (Fcfs, StrictPriority, PreemptivePriority, WeightedFair)
}

# The YAML `scheduler:` mapping of a pool: one config model per policy, told apart by `policy`.
SchedulerConfig: Any = Annotated[
    Union[tuple(policy.Config for policy in SCHEDULERS.values())],  # noqa: UP007
    Field(discriminator="policy"),
]


def build_scheduler(config: Any) -> Scheduler:
    return SCHEDULERS[config.policy](config)
