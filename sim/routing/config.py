"""The routing policies' YAML config models, one per policy (`policy` tells them apart).

They live here, apart from the policies, so that the policies' modules define no pydantic
model and the compiled build (setup.py) can compile them: pydantic cannot read a compiled
class's field annotations. Each policy's module re-exports its config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config_base import StrictModel
from sim.units import Seconds


class AffinityConfig(StrictModel):
    policy: Literal["affinity"]
    bounded_load: float = Field(
        1.25,
        ge=1.0,
        description="Spill from a replica with requests queued and more than this x the mean "
        "requests in flight",
    )


class CacheAwareConfig(StrictModel):
    policy: Literal["cache_aware"]
    staleness_s: Seconds = Field(1.0, ge=0, description="Age of the router's load view at most, s")
    imbalance_ratio: float = Field(
        1.5, ge=1.0, description="Leave the best match when its load passes this x the mean load"
    )
    min_match_ratio: float = Field(
        0.5, ge=0, le=1, description="Follow a match only if it covers this share of the prompt"
    )


class LeastLoadedConfig(StrictModel):
    policy: Literal["least_loaded"]


class PowerOfTwoConfig(StrictModel):
    policy: Literal["power_of_two"]


class RandomConfig(StrictModel):
    policy: Literal["random"]


class RoundRobinConfig(StrictModel):
    policy: Literal["round_robin"]


class ScorerWeights(StrictModel):
    prefix: float = Field(1.0, ge=0, le=1e6, description="Weight of the prefix-match score")
    queue: float = Field(1.0, ge=0, le=1e6, description="Weight of the queue-depth score")
    kv: float = Field(1.0, ge=0, le=1e6, description="Weight of the KV-use score")


class WeightedScorerConfig(StrictModel):
    policy: Literal["weighted_scorer"]
    staleness_s: Seconds = Field(1.0, ge=0, description="Age of the router's load view at most, s")
    weights: ScorerWeights = Field(
        default_factory=lambda: ScorerWeights(), description="Score weights"
    )
