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


def size_prices(params_total: float) -> Prices:
    """A standard model id's list prices from its size (PLATFORM.md)."""
    if params_total <= SMALL_PARAMS:
        return Prices(input_usd_per_mtok=SMALL_USD_PER_MTOK, output_usd_per_mtok=SMALL_USD_PER_MTOK)
    if params_total <= MEDIUM_PARAMS:
        return Prices(
            input_usd_per_mtok=MEDIUM_USD_PER_MTOK, output_usd_per_mtok=MEDIUM_USD_PER_MTOK
        )
    input_usd, cached_usd, output_usd = LARGE_USD_PER_MTOK
    return Prices(
        input_usd_per_mtok=input_usd,
        cached_input_usd_per_mtok=cached_usd,
        output_usd_per_mtok=output_usd,
    )


def scaled(prices: Prices, factor: float) -> Prices:
    """All three prices x `factor` (an unset cached price stays a fraction of input)."""
    cached = prices.cached_input_usd_per_mtok
    return Prices(
        input_usd_per_mtok=prices.input_usd_per_mtok * factor,
        cached_input_usd_per_mtok=None if cached is None else cached * factor,
        output_usd_per_mtok=prices.output_usd_per_mtok * factor,
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


def list_prices(scenario: Scenario, model_id: str) -> Prices:
    """A model id's list prices: its own; else a Fast variant's are billing.fast_multiplier x
    those of the model whose weights it serves (PLATFORM.md: "its Fast variant about 2x"), a
    standard id's its size's."""
    model = scenario.models[model_id]
    if model.prices is not None:
        return model.prices
    if model.fast_of is not None:
        return scaled(list_prices(scenario, model.fast_of), scenario.billing.fast_multiplier)
    return size_prices(get_architecture(model.architecture).params_total)


def price_book(scenario: Scenario) -> PriceBook:
    """The scenario's prices, per model id and tier."""
    prices = {model_id: list_prices(scenario, model_id) for model_id in scenario.models}
    return PriceBook(prices, scenario.billing)
