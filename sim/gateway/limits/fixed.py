"""Limits that never move: set values (by default the PLATFORM.md starting values)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config_base import StrictModel
from sim.gateway.limits.base import (
    FLOOR_GENERATED_TPM,
    FLOOR_PROMPT_TPM,
    FLOOR_UNCACHED_PROMPT_TPM,
    LimitPolicy,
)


class FixedLimitsConfig(StrictModel):
    policy: Literal["fixed"]
    prompt_tpm: float = Field(FLOOR_PROMPT_TPM, gt=0, description="Prompt tokens per minute")
    uncached_prompt_tpm: float = Field(
        FLOOR_UNCACHED_PROMPT_TPM, gt=0, description="Uncached prompt tokens per minute"
    )
    generated_tpm: float = Field(
        FLOOR_GENERATED_TPM, gt=0, description="Generated tokens per minute"
    )


class FixedLimitsPolicy(LimitPolicy):
    name = "fixed"
    Config = FixedLimitsConfig
    config: FixedLimitsConfig

    def start_tpm(self) -> tuple[float, float, float]:
        c = self.config
        return c.prompt_tpm, c.uncached_prompt_tpm, c.generated_tpm
