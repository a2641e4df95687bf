"""Strict priority, and a waiting request that cannot be admitted for want of slots or KV blocks
preempts running requests of lower tiers, lowest tier and most recently admitted first, until
it fits or none is left (as vLLM's `--scheduling-policy priority`). Priority gains TTFT under
load; the preempted Standard and Batch requests pay it in recomputation."""

from __future__ import annotations

from sim.replica.schedulers.base import TierQueues
from sim.replica.schedulers.config import PreemptivePriorityConfig
from sim.request import TIER_RANK, Request


class PreemptivePriority(TierQueues):
    name = "preemptive_priority"
    Config = PreemptivePriorityConfig
    preempts_to_admit = True

    def admission_victim(self, head: Request, running: dict[Request, None]) -> Request | None:
        if not running:
            return None
        victim = self.victim(running)
        return victim if TIER_RANK[victim.tier] > TIER_RANK[head.tier] else None
