"""Prices of each (model id, tier), and the cost of a served attempt.

A served attempt is billed for its uncached prompt tokens at the input price, its cached
prompt tokens at the cached input price and its generated tokens at the output price
(PLATFORM.md, Billing: the `usage` object is the source of truth). Priority and Batch pay a
multiple of list price on all three.
"""

from __future__ import annotations

from sim.gateway.config import Billing, Prices
from sim.perf.catalog import get_architecture
from sim.scenario import Scenario

# PLATFORM.md, Billing: list prices by size, USD per million tokens (input, output); a model
# above 80B total parameters is priced as the DeepSeek-V3-class MoE (input, cached, output).
SMALL_PARAMS, MEDIUM_PARAMS = 16e9, 80e9
SMALL_USD_PER_MTOK, MEDIUM_USD_PER_MTOK = 0.20, 0.90
LARGE_USD_PER_MTOK = (0.56, 0.28, 1.68)


def default_prices(params_total: float, fast: bool, billing: Billing) -> Prices:
    """A model id's list prices from its size (PLATFORM.md), x fast_multiplier for Fast."""
    prices: tuple[float, float | None, float]
    if params_total <= SMALL_PARAMS:
        prices = (SMALL_USD_PER_MTOK, None, SMALL_USD_PER_MTOK)
    elif params_total <= MEDIUM_PARAMS:
        prices = (MEDIUM_USD_PER_MTOK, None, MEDIUM_USD_PER_MTOK)
    else:
        prices = LARGE_USD_PER_MTOK
    scale = billing.fast_multiplier if fast else 1.0
    input_usd, cached_usd, output_usd = prices
    return Prices(
        input_usd_per_mtok=input_usd * scale,
        cached_input_usd_per_mtok=None if cached_usd is None else cached_usd * scale,
        output_usd_per_mtok=output_usd * scale,
    )


class PriceBook:
    """USD per token of each kind, per (model id, tier), multipliers applied."""

    def __init__(self, prices: dict[str, Prices], billing: Billing) -> None:
        tier_multiplier = {
            "standard": 1.0,
            "fast": 1.0,  # a Fast model id has its own (higher) list prices
            "priority": billing.priority_multiplier,
            "batch": billing.batch_multiplier,
        }
        self._per_token: dict[tuple[str, str], tuple[float, float, float]] = {}
        for model, p in prices.items():
            cached = p.cached_input_usd_per_mtok
            if cached is None:
                cached = p.input_usd_per_mtok * billing.cached_input_fraction
            for tier, multiplier in tier_multiplier.items():
                scale = multiplier / 1e6
                self._per_token[model, tier] = (
                    p.input_usd_per_mtok * scale,
                    cached * scale,
                    p.output_usd_per_mtok * scale,
                )

    def cost_usd(
        self, model: str, tier: str, prompt_tokens: int, cached_tokens: int, completion: int
    ) -> float:
        input_usd, cached_usd, output_usd = self._per_token[model, tier]
        return (
            (prompt_tokens - cached_tokens) * input_usd
            + cached_tokens * cached_usd
            + completion * output_usd
        )


def price_book(scenario: Scenario) -> PriceBook:
    """The scenario's prices: each model id's own, or its size's defaults."""
    prices = {
        model_id: model.prices
        or default_prices(
            get_architecture(model.architecture).params_total, model.fast, scenario.billing
        )
        for model_id, model in scenario.models.items()
    }
    return PriceBook(prices, scenario.billing)
