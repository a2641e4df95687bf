"""Scenario sections of the front door's limits, spend tiers, budgets and prices (a leaf
module: the scenario imports it, it imports nothing of the simulation).

Every default is PLATFORM.md's (Rate limits; Billing and headers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from sim.config_base import StrictModel
from sim.gateway.limits import LimitsConfig, default_limits
from sim.units import PositiveSeconds

SpendTier = Literal[1, 2, 3, 4, "unlimited"]

# PLATFORM.md: ceilings as multiples of the floors, monthly budgets (None: unlimited), USD.
DEFAULT_SPEND_TIERS: dict[Any, dict[str, Any]] = {
    1: {"ceiling_multiplier": 1.0, "monthly_budget_usd": 50.0},
    2: {"ceiling_multiplier": 2.5, "monthly_budget_usd": 500.0},
    3: {"ceiling_multiplier": 5.0, "monthly_budget_usd": 5_000.0},
    4: {"ceiling_multiplier": 10.0, "monthly_budget_usd": 50_000.0},
    "unlimited": {"ceiling_multiplier": 25.0, "monthly_budget_usd": None},
}


class SpendTierConfig(StrictModel):
    ceiling_multiplier: float = Field(
        ge=1, description="Ceiling of each adaptive limit, as a multiple of its floor"
    )
    monthly_budget_usd: float | None = Field(
        ge=0, description="Spend per budget period after which requests get 402, USD (null: none)"
    )
    limits: LimitsConfig | None = Field(
        None,
        description="Limit policy of the tier's accounts: adaptive, fixed, none "
        "(null: rate_limits.limits)",
    )


def default_spend_tiers() -> dict[SpendTier, SpendTierConfig]:
    return {tier: SpendTierConfig(**fields) for tier, fields in DEFAULT_SPEND_TIERS.items()}


class RateLimits(StrictModel):
    """How the three token limits of each (account, model id) are set and enforced."""

    limits: LimitsConfig = Field(
        default_factory=default_limits,
        description="Limit policy of every spend tier that sets none: adaptive, fixed, none",
    )
    output_estimate: Literal["none", "max_tokens"] = Field(
        "none",
        description="Generated tokens reserved at admission (max_tokens: the request's output "
        "cap, the rest refunded at its end) or none (charged at the end only)",
    )
    requests_per_min: float = Field(6000.0, gt=0, description="Request cap per account, 1/min")
    requests_per_min_without_payment: float = Field(
        10.0, gt=0, description="Request cap of an account with payment_method: false, 1/min"
    )


class Billing(StrictModel):
    """Price multipliers and the budget period."""

    priority_multiplier: float = Field(
        1.5, ge=0, description="Priority's price as a multiple of list price (all three prices)"
    )
    batch_multiplier: float = Field(
        0.5, ge=0, description="Batch's price as a multiple of list price"
    )
    fast_multiplier: float = Field(
        2.0,
        ge=0,
        description="Default prices of a Fast variant, as a multiple of those of the model it "
        "is a Fast variant of (its fast_of)",
    )
    cached_input_fraction: float = Field(
        0.5, ge=0, description="Cached input price as a fraction of input, where a model sets none"
    )
    budget_period: Literal["month"] | PositiveSeconds = Field(
        "month", description="Budget period: calendar month, or a duration (e.g. '1h', '7d')"
    )
    start_utc: datetime = Field(
        datetime(2026, 1, 1, tzinfo=UTC),
        description="Calendar time of simulated second 0 (where months begin and end)",
    )

    @field_validator("start_utc")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Prices(StrictModel):
    """List prices of one model id (Standard), USD per million tokens."""

    input_usd_per_mtok: float = Field(ge=0, description="Uncached prompt tokens, USD/M")
    cached_input_usd_per_mtok: float | None = Field(
        None, ge=0, description="Cached prompt tokens, USD/M (null: billing.cached_input_fraction)"
    )
    output_usd_per_mtok: float = Field(ge=0, description="Generated tokens, USD/M")


def merge_spend_tiers(value: Any) -> Any:
    """A `spend_tiers:` mapping laid over the defaults, field by field: a YAML entry needs only
    the fields it changes; tiers not given keep their defaults. Keys "1" to "4" (as JSON and
    the resolved scenario write them) are the tiers 1 to 4."""
    if not isinstance(value, dict):
        return value
    merged: dict[Any, Any] = {tier: dict(fields) for tier, fields in DEFAULT_SPEND_TIERS.items()}
    for key, fields in value.items():
        tier = int(key) if isinstance(key, str) and key in ("1", "2", "3", "4") else key
        if tier in merged and isinstance(fields, dict):
            merged[tier] = {**merged[tier], **fields}
        else:
            merged[tier] = fields
    return merged
