"""The PLATFORM.md default: limits that grow while used and shrink when not.

Each period (a minute), for each of the three limits L with floor F and ceiling C = F x the
spend tier's multiplier, given the tokens u used in the period and the largest use p of a
period in the trailing window (an hour):

    u >= grow_at_usage x L         L <- min(C, L x 2^(period / doubling_time))
    u <  decay_below_usage x L     T = max(F, peak_multiple x p);
                                   if L > T: L <- T + (L - T) x 2^(-period / decay_half_life)
    otherwise                      L unchanged

and always F <= L <= C. A limit used at 70% each minute doubles in an hour.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.gateway.limits.base import (
    FLOOR_GENERATED_TPM,
    FLOOR_PROMPT_TPM,
    FLOOR_UNCACHED_PROMPT_TPM,
    LimitPolicy,
)
from sim.units import PositiveSeconds


class AdaptiveLimitsConfig(StrictModel):
    policy: Literal["adaptive"]
    prompt_tpm: float = Field(
        FLOOR_PROMPT_TPM, gt=0, description="Floor (starting value) of the prompt limit, tokens/min"
    )
    uncached_prompt_tpm: float = Field(
        FLOOR_UNCACHED_PROMPT_TPM,
        gt=0,
        description="Floor (starting value) of the uncached prompt limit, tokens/min",
    )
    generated_tpm: float = Field(
        FLOOR_GENERATED_TPM,
        gt=0,
        description="Floor (starting value) of the generated limit, tokens/min",
    )
    update_period_s: PositiveSeconds = Field(60.0, description="Time between limit updates, s")
    grow_at_usage: float = Field(
        0.7, gt=0, le=1, description="A limit grows when a period's use reaches this fraction"
    )
    decay_below_usage: float = Field(
        0.3, ge=0, le=1, description="A limit decays when a period's use stays under this fraction"
    )
    doubling_time_s: PositiveSeconds = Field(
        3600.0, description="Growth rate: a limit grown every period doubles in this time, s"
    )
    decay_half_life_s: PositiveSeconds = Field(
        3600.0, description="Half-life of a decaying limit's distance to its target, s"
    )
    peak_window_s: PositiveSeconds = Field(
        3600.0, description="Window of the trailing peak of use the decay target follows, s"
    )
    peak_multiple: float = Field(
        2.0, ge=0, description="Decay target: this multiple of the trailing peak (or the floor)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveLimitsConfig:
        if self.decay_below_usage > self.grow_at_usage:
            raise ValueError(
                f"decay_below_usage ({self.decay_below_usage:g}) must not exceed "
                f"grow_at_usage ({self.grow_at_usage:g})"
            )
        return self


class AdaptiveLimitsPolicy(LimitPolicy):
    name = "adaptive"
    Config = AdaptiveLimitsConfig
    config: AdaptiveLimitsConfig

    def __init__(self, config: AdaptiveLimitsConfig, ceiling_multiplier: float) -> None:
        super().__init__(config, ceiling_multiplier)
        period = config.update_period_s
        self.update_period_s = period
        self.peak_window_updates = max(1, round(config.peak_window_s / period))
        self._floors = (config.prompt_tpm, config.uncached_prompt_tpm, config.generated_tpm)
        self._ceilings = tuple(floor * ceiling_multiplier for floor in self._floors)
        self._growth = 2.0 ** (period / config.doubling_time_s)
        self._decay = 2.0 ** (-period / config.decay_half_life_s)

    def start_tpm(self) -> tuple[float, float, float]:
        return self._floors

    def update(self, kind: int, limit_tpm: float, used: float, peak: float) -> float:
        c = self.config
        if used >= c.grow_at_usage * limit_tpm:
            return min(self._ceilings[kind], limit_tpm * self._growth)
        if used < c.decay_below_usage * limit_tpm:
            target = max(self._floors[kind], c.peak_multiple * peak)
            if limit_tpm > target:
                limit_tpm = target + (limit_tpm - target) * self._decay
        return min(self._ceilings[kind], max(limit_tpm, self._floors[kind]))
