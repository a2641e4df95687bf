"""Tiers admitted in strict order (Priority, Standard), FIFO within a tier; when memory
runs out the most recently admitted request of the lowest tier running is preempted. The
platform's default (PLATFORM.md): Priority never waits behind Standard, but it waits for memory
that running Standard requests hold."""

from __future__ import annotations

from typing import Literal

from sim.config_base import StrictModel
from sim.replica.schedulers.base import TierQueues


class StrictPriorityConfig(StrictModel):
    """Tiers in strict order (Priority, Standard), FIFO within a tier (the default)."""

    policy: Literal["strict_priority"]


class StrictPriority(TierQueues):
    name = "strict_priority"
    Config = StrictPriorityConfig
