"""What every limit policy decides: the three token limits of one (account, model id) at the
start, and how each moves at the end of an update period given what was used in it.

The policy only decides; the account's token buckets (`sim.gateway.buckets`) hold the state
and enforce the limits.
"""

from __future__ import annotations

import math
from typing import ClassVar

from sim.config_base import StrictModel

# The three limits, in this order everywhere (tuples, columns, bucket arrays).
LIMIT_KINDS = ("prompt", "uncached_prompt", "generated")
PROMPT, UNCACHED_PROMPT, GENERATED = 0, 1, 2
UNLIMITED = math.inf

# PLATFORM.md, Rate limits: the stated starting values (the adaptive floors), tokens per minute.
FLOOR_PROMPT_TPM = 3_600_000.0
FLOOR_UNCACHED_PROMPT_TPM = 900_000.0
FLOOR_GENERATED_TPM = 36_000.0


class LimitPolicy:
    """A policy over the three limits of one (account, model id)."""

    name: ClassVar[str]
    Config: ClassVar[type[StrictModel]]
    # Seconds between limit updates (None: the limits never move).
    update_period_s: float | None = None
    # Updates over which the trailing peak of usage is kept (0: the policy does not use it).
    peak_window_updates: int = 0

    def __init__(self, config: StrictModel, ceiling_multiplier: float) -> None:
        self.config = config
        self.ceiling_multiplier = ceiling_multiplier

    def start_tpm(self) -> tuple[float, float, float]:
        """The limits in force when the account first sends to the model, tokens per minute."""
        raise NotImplementedError

    def update(self, kind: int, limit_tpm: float, used: float, peak: float) -> float:
        """The limit for the next period, from the one in force, the tokens used in the period
        that ended and the largest use of a period within the peak window (that one included)."""
        return limit_tpm
