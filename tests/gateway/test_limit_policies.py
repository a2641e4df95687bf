"""Contract tests over every registered limit policy, and the adaptive rule's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.gateway.buckets import TokenBuckets
from sim.gateway.limits import POLICIES, build_policy
from sim.gateway.limits.base import GENERATED, PROMPT, UNCACHED_PROMPT

CEILING = 2.5


def _policy(name: str):  # type: ignore[no-untyped-def]
    return build_policy(POLICIES[name].Config(policy=name), CEILING)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_contract_limits_stay_between_floor_and_ceiling(name: str) -> None:
    """Whatever the use, every limit stays positive, at or above its start and at or below
    start x ceiling multiplier; the same use gives the same limits."""
    policy = _policy(name)
    assert policy.name == name
    start = policy.start_tpm()
    runs = []
    for _ in range(2):
        limits = list(start)
        trail: list[list[float]] = [[], [], []]
        seen = []
        for fraction in np.random.default_rng(7).uniform(0, 1.5, 400):
            for kind in range(3):
                used = fraction * limits[kind] if math.isfinite(limits[kind]) else 1e6
                trail[kind].append(used)
                peak = max(trail[kind][-60:])
                limits[kind] = policy.update(kind, limits[kind], used, peak)
                assert limits[kind] > 0
                assert limits[kind] >= start[kind] * (1 - 1e-12)
                assert limits[kind] <= start[kind] * CEILING * (1 + 1e-12)
            seen.append(tuple(limits))
        runs.append(seen)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_contract_buckets_enforce_the_policy(name: str) -> None:
    """Through the buckets: an attempt is refused only while a bucket is empty, and a
    policy without finite limits never refuses."""
    policy = _policy(name)
    buckets = TokenBuckets(policy, 0.0)
    refused = 0
    for i in range(2000):
        now = i * 0.5
        if buckets.try_admit(now, 20_000, 0):
            buckets.settle(now, 5_000, 1_000, 0)
        else:
            refused += 1
            assert min(buckets.levels_at(now)) <= 0
    assert buckets.attempts == 2000 and buckets.rate_limited == refused
    if all(math.isinf(limit) for limit in policy.start_tpm()):
        assert refused == 0
    else:
        assert refused > 0  # 2,000 generated tokens/s, above any ceiling


def test_adaptive_doubles_in_an_hour_at_70_percent_and_stops_at_the_ceiling() -> None:
    policy = _policy("adaptive")
    floor = policy.start_tpm()[GENERATED]
    limit = floor
    for _ in range(60):
        limit = policy.update(GENERATED, limit, 0.7 * limit, 0.7 * limit)
    assert limit == pytest.approx(2 * floor, rel=1e-9)
    for _ in range(600):
        limit = policy.update(GENERATED, limit, 0.7 * limit, 0.7 * limit)
    assert limit == CEILING * floor


def test_adaptive_decays_toward_twice_the_trailing_peak_with_a_one_hour_half_life() -> None:
    policy = _policy("adaptive")
    floor = policy.start_tpm()[PROMPT]
    limit, peak = CEILING * floor, 0.6 * floor  # target 1.2 x floor
    for _ in range(60):
        limit = policy.update(PROMPT, limit, 0.0, peak)
    target = 2 * peak
    assert limit == pytest.approx(target + (CEILING * floor - target) / 2, rel=1e-9)
    # between the thresholds nothing moves
    assert policy.update(UNCACHED_PROMPT, 2e6, 1e6, 1e6) == 2e6
