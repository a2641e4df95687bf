"""Token buckets: continuous refill, debt, lazy limit updates, and the request cap."""

from __future__ import annotations

import pytest

from sim.gateway.buckets import RequestCap, TokenBuckets
from sim.gateway.limits import build_policy
from sim.gateway.limits.adaptive import AdaptiveLimitsConfig
from sim.gateway.limits.fixed import FixedLimitsConfig


def _fixed(prompt: float = 600.0, uncached: float = 600.0, generated: float = 600.0):  # type: ignore[no-untyped-def]
    config = FixedLimitsConfig(
        policy="fixed", prompt_tpm=prompt, uncached_prompt_tpm=uncached, generated_tpm=generated
    )
    return TokenBuckets(build_policy(config, 1.0), 0.0)


def test_refill_is_continuous_and_capped_at_one_minute() -> None:
    buckets = _fixed()
    assert buckets.try_admit(0.0, 600, 0)
    assert buckets.levels_at(0.0) == [0.0, 600.0, 600.0]
    assert buckets.levels_at(30.0)[0] == pytest.approx(300.0)
    assert buckets.levels_at(600.0)[0] == 600.0


def test_debt_refuses_until_repaid() -> None:
    buckets = _fixed()
    assert buckets.try_admit(0.0, 1500, 0)  # not empty: admitted, 900 tokens in debt
    assert not buckets.try_admit(60.0, 1, 0)  # refilled 600 of the 900
    assert not buckets.try_admit(89.9, 1, 0)
    assert buckets.try_admit(90.1, 1, 0)
    assert (buckets.attempts, buckets.rate_limited) == (4, 2)


def test_generated_settled_at_the_end_against_the_reservation() -> None:
    buckets = _fixed()
    assert buckets.try_admit(0.0, 10, 500)  # reserve 500 generated
    assert buckets.levels_at(0.0)[2] == 100.0
    buckets.settle(0.0, 4, 200, 500)  # 200 generated: 300 refunded
    assert buckets.levels_at(0.0) == [590.0, 596.0, 400.0]
    buckets.refund(0.0, 0, 0)
    assert buckets.used_total() == (10.0, 4.0, 200.0)


def test_refund_of_an_attempt_refused_later() -> None:
    buckets = _fixed()
    assert buckets.try_admit(10.0, 300, 100)
    buckets.refund(10.0, 300, 100)
    assert buckets.levels_at(10.0) == [600.0, 600.0, 600.0]
    assert buckets.used_total() == (0.0, 0.0, 0.0)


def test_adaptive_limit_used_at_70_percent_doubles_in_an_hour_through_the_buckets() -> None:
    """Use 70% of the prompt limit in every minute: an hour later the limit has doubled
    (within 5%), and it stops at the tier's ceiling."""
    policy = build_policy(AdaptiveLimitsConfig(policy="adaptive"), 2.5)
    buckets = TokenBuckets(policy, 0.0)
    floor = buckets.limit_tpm[0]
    for minute in range(60):
        buckets.advance(minute * 60.0 + 1.0)
        assert buckets.try_admit(minute * 60.0 + 1.0, round(0.7 * buckets.limit_tpm[0]) + 1, 0)
    buckets.advance(3600.0)
    assert buckets.limit_tpm[0] / floor == pytest.approx(2.0, rel=0.05)
    for minute in range(60, 200):
        buckets.advance(minute * 60.0 + 1.0)
        assert buckets.try_admit(minute * 60.0 + 1.0, round(0.7 * buckets.limit_tpm[0]) + 1, 0)
    buckets.advance(200 * 60.0)
    assert buckets.limit_tpm[0] == 2.5 * floor
    assert buckets.limit_tpm[1:] == [9e5, 36e3]  # unused limits stay at their floors


def test_reading_the_state_changes_nothing_a_request_sees() -> None:
    """Sampling (advance + levels_at at any times) leaves the requests' outcomes and the
    levels bit-identical."""
    policy = build_policy(AdaptiveLimitsConfig(policy="adaptive"), 10.0)
    plain, sampled = TokenBuckets(policy, 5.0), TokenBuckets(policy, 5.0)
    outcomes: list[list[bool]] = [[], []]
    for i in range(3000):
        now = 5.0 + i * 1.7
        prompt = 40_000 + (i * 7919) % 600_000
        for k, buckets in enumerate((plain, sampled)):
            if k == 1 and i % 3 == 0:
                sample_at = now - 0.9
                buckets.advance(sample_at)
                buckets.levels_at(sample_at)
            admitted = buckets.try_admit(now, prompt, 0)
            outcomes[k].append(admitted)
            if admitted:
                buckets.settle(now, prompt // 3, 700, 0)
    assert outcomes[0] == outcomes[1]
    assert plain.base_s == sampled.base_s and plain.limit_tpm == sampled.limit_tpm
    assert plain.levels_at(plain.base_s) == sampled.levels_at(sampled.base_s)  # as stored
    assert not all(outcomes[0]) and any(outcomes[0])


def test_idle_account_skips_to_now() -> None:
    policy = build_policy(AdaptiveLimitsConfig(policy="adaptive"), 10.0)
    buckets = TokenBuckets(policy, 0.0)
    buckets.advance(86_400.0 * 30)
    assert buckets.period == 43_200 and buckets.limit_tpm == [3.6e6, 9e5, 36e3]


def test_request_cap() -> None:
    cap = RequestCap(10.0, 0.0)
    assert all(cap.take(0.0) for _ in range(10))
    assert not cap.take(0.0)
    assert not cap.take(5.9)
    assert cap.take(6.0)  # one request refilled every 6 s
    cap.give_back(6.0)
    assert cap.take(6.0) and not cap.take(6.0)
