"""Tiers admitted in strict order (Priority, Standard), FIFO within a tier; when memory
runs out the most recently admitted request of the lowest tier running is preempted. The
platform's default (PLATFORM.md): Priority never waits behind Standard, but it waits for memory
that running Standard requests hold."""

from __future__ import annotations

from sim.replica.schedulers.base import TierQueues
from sim.replica.schedulers.config import StrictPriorityConfig


class StrictPriority(TierQueues):
    name = "strict_priority"
    Config = StrictPriorityConfig
