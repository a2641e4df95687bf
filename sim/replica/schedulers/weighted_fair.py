"""Tiers share admission by weight over the tokens admitted (start-time fair queueing): each
tier's virtual time grows by a request's prompt + output tokens / the tier's weight when the
request is first admitted, and the next request comes from the waiting tier whose virtual time
is least (ties: the higher tier). A tier that starts waiting joins at the current virtual time,
so idle time earns it no burst. With priority 4 and standard 1, a backlogged Standard gets a
quarter of Priority's tokens: slowed, never starved. Preemption when memory runs out is as
strict priority's (lowest tier, most recent). Batch is not in this share: it waits in its
pool's queue for spare capacity (`sim/replica/batch.py`)."""

from __future__ import annotations

from sim.config_base import StrictModel
from sim.replica.schedulers.base import TierQueues
from sim.replica.schedulers.config import WeightedFairConfig
from sim.request import TIER_RANK, Request


class WeightedFair(TierQueues):
    name = "weighted_fair"
    Config = WeightedFairConfig

    def __init__(self, config: StrictModel) -> None:
        super().__init__(config)
        assert isinstance(config, WeightedFairConfig)
        weights = config.weights
        self.weights = (weights.priority, weights.standard)  # by tier rank
        self.virtual = [0.0, 0.0]  # tokens admitted / weight, per tier rank
        self.now = 0.0  # virtual time: the tag of the last admitted request's tier

    def _joins(self, rank: int) -> None:
        if not self.queues[rank] and self.virtual[rank] < self.now:
            self.virtual[rank] = self.now

    def add(self, request: Request) -> None:
        self._joins(TIER_RANK[request.tier])
        super().add(request)

    def requeue(self, request: Request) -> None:
        self._joins(TIER_RANK[request.tier])
        super().requeue(request)

    def head(self) -> Request | None:
        best = None
        for rank, queue in enumerate(self.queues):
            if queue and (best is None or self.virtual[rank] < self.virtual[best]):
                best = rank
        return None if best is None else self.queues[best][0]

    def pop_head(self, request: Request) -> None:
        super().pop_head(request)
        rank = TIER_RANK[request.tier]
        self.now = self.virtual[rank]
        if not request.preemptions:  # a readmission brings no new tokens
            tokens = request.prompt_tokens + request.output_tokens
            self.virtual[rank] += tokens / self.weights[rank]
