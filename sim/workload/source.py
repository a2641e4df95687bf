"""What every traffic source shares: what the engine hands it, and how a request's tier and
sticky-routing key are drawn."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.clock import Clock
from sim.request import Request
from sim.rng import choice_cdf, choose, stream
from sim.workload.chains import Runs
from sim.workload.client import Client
from sim.workload.config import Traffic
from sim.workload.retry import RetryConfig


@dataclass(frozen=True)
class SourceContext:
    env: Clock
    seed: int
    duration_s: float  # arrivals stop here
    block_size: int  # KV block of the model's pools: prompts are cut into blocks of this size
    users: int  # end users of the source's account (values of the `user` field)
    tier_override: str | None  # "fast" for a Fast model's traffic, else None (tier_mix)
    next_id: Callable[[], int]
    submit: Callable[[Request], None]  # the gateway's
    retry: RetryConfig  # the source's, or the scenario's

    def client(self, traffic: Traffic, on_final: Callable[[Request], None] | None = None) -> Client:
        """The source's client: it sends, hears outcomes and retries (`on_final` hears each
        logical request's final attempt)."""
        return Client(
            self.env, self.seed, traffic.name, self.retry, self.submit, self.next_id, on_final
        )

    def request(
        self,
        traffic: Traffic,
        tier: str,
        prompt_tokens: int,
        output_tokens: int,
        block_runs: Runs | None = None,
    ) -> Request:
        """A new request of `traffic`, arriving now."""
        return Request(
            self.next_id(),
            traffic.name,
            traffic.account,
            traffic.model,
            tier,
            self.env.now,
            prompt_tokens,
            output_tokens,
            block_runs,
        )

    def rng(self, traffic: Traffic, purpose: str) -> np.random.Generator:
        """The source's own stream for one purpose (arrivals, prompt_tokens, tier, ...)."""
        return stream(self.seed, "traffic", traffic.name, purpose)


class TierDraw:
    """Tiers of a source's requests, in the shares of its tier_mix (or the Fast override)."""

    def __init__(self, traffic: Traffic, context: SourceContext) -> None:
        names = [context.tier_override] if context.tier_override else list(traffic.tier_mix)
        shares = np.array([1.0] if context.tier_override else list(traffic.tier_mix.values()))
        self._names = np.array(names, dtype=object)
        self._cdf = choice_cdf(shares / shares.sum())
        self._rng = context.rng(traffic, "tier")
        self._name_list: list[str] = list(names)  # for draw_list
        self._cdf_list: list[float] = self._cdf.tolist()

    def draw(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """n tiers from the source's tier stream, or from `rng` (a session's own stream)."""
        if len(self._names) == 1:
            return np.repeat(self._names, n)
        rng = self._rng if rng is None else rng
        return self._names[choose(rng, self._cdf, n)]

    def draw_list(self, n: int, rng: np.random.Generator) -> list[str]:
        """`draw(n, rng)` as a list: the same uniforms searched in a list of the cdf (for the
        few tiers of a session, where the arrays cost more than the search)."""
        names = self._name_list
        if len(names) == 1:
            return names * n
        cdf = self._cdf_list
        return [names[bisect_right(cdf, u)] for u in rng.random(n).tolist()]


def user_key(traffic: Traffic, user: int) -> str:
    """The `user` field a request of this account's end user `user` carries."""
    return f"{traffic.account}/u{user}"
