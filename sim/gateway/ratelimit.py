"""The front door's rate-limit check: the account's request cap, then the three token buckets
of (account, model id) (PLATFORM.md, Rate limits).

Admission charges the prompt (and, with `output_estimate: max_tokens`, the request's output
cap) and one request of the cap. At the attempt's end (`settle`, the gateway's outcome event)
a served attempt is charged its uncached prompt tokens, now that the replica has found the
cached ones, and its generated tokens less the reservation; an attempt that was admitted here
and then not served (shed by a later check, or answered with an error) gets back what
admission charged.
"""

from __future__ import annotations

from sim.gateway.buckets import RequestCap, TokenBuckets
from sim.gateway.config import RateLimits
from sim.gateway.limits import build_policy
from sim.gateway.limits.base import LimitPolicy
from sim.replica.batch import BATCH
from sim.request import Request
from sim.scenario import Scenario
from sim.status import STATUS_OK, STATUS_RATE_LIMITED
from sim.workload.distributions import ConstantLength, EmpiricalLength, LengthDist, UniformLength

PER_MINUTE = 1 / 60.0


class RateLimitCheck:
    def __init__(self, scenario: Scenario, rate_limits: RateLimits) -> None:
        tiers = scenario.spend_tiers
        default = rate_limits.limits
        self._policies: dict[str, LimitPolicy] = {}
        self._caps: dict[str, RequestCap] = {}
        for account in scenario.accounts:
            tier = tiers[account.spend_tier]
            config = account.limits or tier.limits or default
            self._policies[account.name] = build_policy(config, tier.ceiling_multiplier)
            cap = rate_limits.requests_per_min
            if not account.payment_method:
                cap = rate_limits.requests_per_min_without_payment
            self._caps[account.name] = RequestCap(cap, 0.0)
        # With `output_estimate: max_tokens`, the output cap reserved per traffic source (a
        # trace's own output length where its source sets no cap).
        self._max_tokens: dict[str, int] | None = None
        if rate_limits.output_estimate == "max_tokens":
            self._max_tokens = {
                t.name: max_tokens(t.output_tokens) for t in scenario.traffic if t.output_tokens
            }
        self.buckets: dict[tuple[str, str], TokenBuckets] = {}

    def admit(self, request: Request, now_s: float) -> int:
        if request.tier == BATCH:
            return 0  # Batch has no rate limit (PLATFORM.md, Traffic tiers): nothing charged
        key = (request.account, request.model)
        buckets = self.buckets.get(key)
        if buckets is None:
            buckets = self.buckets[key] = TokenBuckets(self._policies[request.account], now_s)
        if now_s >= buckets.period_end_s:
            buckets.advance(now_s)  # the headers show the limits in force now
        limits = buckets.limit_tpm
        request.limit_prompt_tps = limits[0] * PER_MINUTE
        request.limit_uncached_prompt_tps = limits[1] * PER_MINUTE
        request.limit_generated_tps = limits[2] * PER_MINUTE
        cap = self._caps[request.account]
        if not cap.take(now_s):
            buckets.attempts += 1
            buckets.rate_limited += 1
            return STATUS_RATE_LIMITED
        reserve = 0 if self._max_tokens is None else self._reserve(request)
        if not buckets.try_admit(now_s, request.prompt_tokens, reserve):
            cap.give_back(now_s)
            return STATUS_RATE_LIMITED
        request.limit_buckets = buckets
        return 0

    def _reserve(self, request: Request) -> int:
        if self._max_tokens is None:
            return 0
        return self._max_tokens.get(request.traffic, request.output_tokens)

    def settle(self, request: Request, now_s: float) -> None:
        buckets = request.limit_buckets
        if buckets is None:
            return  # refused before or by this check: nothing was charged
        request.limit_buckets = None
        reserved = 0 if self._max_tokens is None else self._reserve(request)
        if request.status == STATUS_OK:
            uncached = request.prompt_tokens - request.cached_tokens
            buckets.settle(now_s, uncached, request.output_tokens, reserved)
        else:
            buckets.refund(now_s, request.prompt_tokens, reserved)
            self._caps[request.account].give_back(now_s)


def max_tokens(length: LengthDist) -> int:
    """The largest output a length law draws: the `max_tokens` its client would send."""
    if isinstance(length, ConstantLength):
        return length.value
    if isinstance(length, UniformLength):
        return length.high
    if isinstance(length, EmpiricalLength):
        return max(length.values)
    return int(length.max)  # the clipped laws (lognormal, normal)
