"""How clients retry 429 and 503: exponential backoff with jitter.

The four jitter kinds are those of the AWS Architecture Blog, "Exponential Backoff And Jitter"
(Marc Brooker, 2015), with `factor` in place of its 2. Before retry k (k = 1 after the first
attempt), with ceiling_k = min(cap_s, base_s x factor^(k-1)) and U a uniform draw:

- none:          wait ceiling_k
- full:          wait U(0, ceiling_k)
- equal:         wait ceiling_k / 2 + U(0, ceiling_k / 2)
- decorrelated:  wait min(cap_s, U(base_s, 3 x previous wait)), the previous wait of the first
                 retry being base_s (the blog's fixed x3: `factor` does not apply)

Defaults (PLATFORM.md, "Who sends what"): 1 s base, doubling, capped at 60 s, 5 attempts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.units import NonNegativeSeconds

Jitter = Literal["full", "equal", "decorrelated", "none"]
DECORRELATED_GROWTH = 3.0  # the AWS blog's decorrelated jitter: U(base, previous x 3)


class RetryConfig(StrictModel):
    """A client's retries of 429 (rate limited) and 503 (shed); other refusals are final."""

    max_attempts: int = Field(
        5, ge=1, le=100, description="Attempts per logical request, the first included (1: none)"
    )
    base_s: NonNegativeSeconds = Field(1.0, description="Backoff ceiling of the first retry, s")
    factor: float = Field(
        2.0, ge=1, le=10, description="Growth of the ceiling per retry (not for decorrelated)"
    )
    cap_s: NonNegativeSeconds = Field(60.0, description="Longest wait between attempts, s")
    jitter: Jitter = Field(
        "full", description="How a wait is drawn below its ceiling: full, equal, decorrelated, none"
    )

    @model_validator(mode="after")
    def _factor_applies(self) -> RetryConfig:
        if self.jitter == "decorrelated" and "factor" in self.model_fields_set:
            raise ValueError(
                "decorrelated jitter grows by the AWS blog's fixed x3 (U(base_s, 3 x previous "
                "wait)): `factor` does not apply, remove it"
            )
        return self

    def wait_s(self, retry: int, previous_s: float, uniform: float) -> float:
        """The wait before retry number `retry` (1, 2, ...), given the previous wait (for
        decorrelated jitter) and a uniform draw in [0, 1)."""
        if self.jitter == "decorrelated":
            low = self.base_s
            high = max(low, DECORRELATED_GROWTH * (previous_s if retry > 1 else low))
            return min(self.cap_s, low + (high - low) * uniform)
        ceiling = min(self.cap_s, self.base_s * self.factor ** (retry - 1))
        if self.jitter == "full":
            return ceiling * uniform
        if self.jitter == "equal":
            return ceiling / 2 + ceiling / 2 * uniform
        return ceiling
