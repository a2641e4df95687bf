"""The schedulers' YAML config models, one per policy (`policy` tells them apart).

They live here, apart from the schedulers, so that the schedulers' modules define no pydantic
model and the compiled build (setup.py) can compile them: pydantic cannot read a compiled
class's field annotations. Each scheduler's module re-exports its config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config_base import StrictModel


class FcfsConfig(StrictModel):
    """One queue in arrival order whatever the tier."""

    policy: Literal["fcfs"]


class PreemptivePriorityConfig(StrictModel):
    """Strict priority; a request that cannot be admitted preempts running lower tiers."""

    policy: Literal["preemptive_priority"]


class StrictPriorityConfig(StrictModel):
    """Tiers in strict order (Priority, Standard), FIFO within a tier (the default)."""

    policy: Literal["strict_priority"]


class TierWeights(StrictModel):
    """A waiting tier's share of admitted tokens is its weight over the waiting tiers' sum."""

    priority: float = Field(4.0, gt=0, description="Share weight of the Priority tier")
    standard: float = Field(
        1.0, gt=0, description="Share weight of the Standard tier (and of Fast pools)"
    )


class WeightedFairConfig(StrictModel):
    """Tiers share admission by weight over the tokens admitted."""

    policy: Literal["weighted_fair"]
    weights: TierWeights = Field(
        default_factory=lambda: TierWeights(), description="Admission weights by tier"
    )
