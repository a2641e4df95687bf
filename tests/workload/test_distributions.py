"""Token-length and think-time distributions: sample means against the exact `mean`, bounds,
the single and vectorised draws, parameter validation, and `mean` of the clipped laws against
the pmf summed over their whole support."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from sim.workload.distributions import (
    EmpiricalLength,
    LengthDist,
    LogNormalLength,
    NormalLength,
    UniformLength,
)
from sim.workload.durations import TimeDist

N = 1_000_000  # draws per sample-mean check: fractions of a percent resolution
Z = 5.0  # standard errors allowed: a false alarm has probability below 1e-6
EPS = float(np.finfo(float).eps)

LENGTH = TypeAdapter(LengthDist)
TIME = TypeAdapter(TimeDist)

LENGTHS: dict[str, dict[str, Any]] = {
    "lognormal": {"dist": "lognormal", "median": 200, "sigma": 0.8},
    "lognormal-max": {"dist": "lognormal", "median": 200, "sigma": 0.8, "max": 300},
    "lognormal-heavy-max": {"dist": "lognormal", "median": 50, "sigma": 2.0, "max": 5000},
    "normal": {"dist": "normal", "mean": 20, "std": 15},  # a fifth of the draws clipped to 1
    "normal-max": {"dist": "normal", "mean": 20, "std": 15, "max": 30},
    "normal-std-0": {"dist": "normal", "mean": 7.5, "std": 0},
    "constant": {"dist": "constant", "value": 321},
    "uniform": {"dist": "uniform", "low": 10, "high": 17},
    "uniform-one-value": {"dist": "uniform", "low": 5, "high": 5},
    "empirical": {"dist": "empirical", "values": [3, 50, 700], "weights": [0.5, 0.3, 0.2]},
    "empirical-equal": {"dist": "empirical", "values": [3, 50, 700]},
    "empirical-zero-weight": {"dist": "empirical", "values": [3, 50], "weights": [0, 2]},
}

TIMES: dict[str, dict[str, Any]] = {
    "exponential": {"dist": "exponential", "mean_s": 4.0},
    "lognormal": {"dist": "lognormal", "median_s": 20, "sigma": 0.6},
    "constant": {"dist": "constant", "value_s": 2.5},
    "constant-zero": {"dist": "constant", "value_s": 0},
    "uniform": {"dist": "uniform", "low_s": 1, "high_s": "3s"},
}


def _continuous(dist: Any) -> Any:
    """The scipy law of the continuous draw of a clipped length distribution."""
    if isinstance(dist, LogNormalLength):
        return stats.lognorm(dist.sigma, scale=dist.median)
    assert isinstance(dist, NormalLength)
    return stats.norm(dist.mean_tokens, dist.std)


def _pmf(dist: Any) -> np.ndarray:
    """P(Y = k) for k = 1..max of a clipped length distribution, from its continuous CDF."""
    cdf = _continuous(dist).cdf(np.arange(1, dist.max) + 0.5)  # k covers [k - 1/2, k + 1/2)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def _length_sd(dist: Any) -> float:
    """Standard deviation of a length distribution (an upper bound for an unclipped one)."""
    if isinstance(dist, NormalLength) and dist.std == 0:
        return 0.0  # every draw is the rounded mean
    if isinstance(dist, LogNormalLength | NormalLength):
        if dist.max <= 100_000:  # exact, from the pmf
            pmf, k = _pmf(dist), np.arange(1, dist.max + 1)
            return float(np.sqrt(np.dot(pmf, k**2) - np.dot(pmf, k) ** 2))
        # Y = rint(clip(X, 1, max)): the clip is 1-Lipschitz, so sd(clip(X)) <= sd(X), and
        # rounding moves each draw by at most 1/2, adding at most 1/2 to the sd.
        return float(_continuous(dist).std()) + 0.5
    if isinstance(dist, UniformLength):
        return math.sqrt(((dist.high - dist.low + 1) ** 2 - 1) / 12)
    if isinstance(dist, EmpiricalLength):
        p, v = dist._probs(), np.asarray(dist.values, float)
        return float(np.sqrt(np.dot(p, v**2) - np.dot(p, v) ** 2))
    return 0.0  # constant


def _time_sd(dist: Any) -> float:
    if dist.dist == "exponential":
        return float(dist.mean_s)
    if dist.dist == "lognormal":
        return float(stats.lognorm(dist.sigma, scale=dist.median_s).std())
    if dist.dist == "uniform":
        return (dist.high_s - dist.low_s) / math.sqrt(12)
    return 0.0


@pytest.mark.parametrize("spec", LENGTHS.values(), ids=LENGTHS.keys())
def test_length_sample_mean_is_the_exact_mean(spec: dict[str, Any]) -> None:
    dist = LENGTH.validate_python(spec)
    draws = dist.sample(np.random.default_rng(1), N)
    assert abs(draws.mean() - dist.mean) <= Z * _length_sd(dist) / math.sqrt(N)


@pytest.mark.parametrize("spec", LENGTHS.values(), ids=LENGTHS.keys())
def test_lengths_are_whole_tokens_within_bounds(spec: dict[str, Any]) -> None:
    dist = LENGTH.validate_python(spec)
    draws = dist.sample(np.random.default_rng(2), 100_000)
    assert draws.dtype == np.int64 and draws.shape == (100_000,)
    assert draws.min() >= 1
    if isinstance(dist, LogNormalLength | NormalLength):
        assert draws.max() <= dist.max
    if isinstance(dist, UniformLength):
        assert dist.low <= draws.min() and draws.max() <= dist.high
    if isinstance(dist, EmpiricalLength):
        drawable = {v for v, p in zip(dist.values, dist._probs(), strict=True) if p > 0}
        assert set(draws.tolist()) <= drawable


def test_clipped_laws_pile_their_tails_on_the_bounds() -> None:
    normal = LENGTH.validate_python(LENGTHS["normal-max"])
    draws = normal.sample(np.random.default_rng(3), N)
    pmf = _pmf(normal)
    for value, p in ((1, pmf[0]), (normal.max, pmf[-1])):
        # Binomial count: within Z standard errors of N p.
        assert abs((draws == value).sum() - N * p) <= Z * math.sqrt(N * p * (1 - p))


@pytest.mark.parametrize("name", ["uniform", "empirical", "empirical-equal"])
def test_discrete_lengths_draw_each_value_with_its_probability(name: str) -> None:
    dist = LENGTH.validate_python(LENGTHS[name])
    if isinstance(dist, UniformLength):
        values, probs = np.arange(dist.low, dist.high + 1), None
    else:
        values, probs = np.asarray(dist.values), dist._probs()
    draws = dist.sample(np.random.default_rng(4), 100_000)
    counts = np.array([(draws == v).sum() for v in values])
    expected = len(draws) * (np.full(len(values), 1 / len(values)) if probs is None else probs)
    assert stats.chisquare(counts, expected).pvalue > 1e-6  # a false alarm at level 1e-6


@pytest.mark.parametrize("spec", LENGTHS.values(), ids=LENGTHS.keys())
def test_one_length_draw_is_a_python_int_and_the_first_of_a_batch(spec: dict[str, Any]) -> None:
    dist = LENGTH.validate_python(spec)
    for seed in range(20):
        one = dist.sample(np.random.default_rng(seed))
        assert type(one) is int
        assert one == dist.sample(np.random.default_rng(seed), 5)[0]


# The lognormal laws' lists are computed element by element (sim/workload/lognormal.py):
# heavy tails, clipping on both sides and odd sizes check that they round and
# clip as the arrays do, and leave the stream where the array draw leaves it.
LIST_LENGTHS = {
    **LENGTHS,
    "lognormal-clipped-low": {"dist": "lognormal", "median": 1.3, "sigma": 3.0, "max": 40},
    "lognormal-huge-sigma": {"dist": "lognormal", "median": 1e6, "sigma": 20},
}


LISTS = [(LENGTH, spec, int) for spec in LIST_LENGTHS.values()] + [
    (TIME, spec, float) for spec in TIMES.values()
]


@pytest.mark.parametrize(
    ("adapter", "spec", "kind"),
    LISTS,
    ids=[f"length-{name}" for name in LIST_LENGTHS] + [f"time-{name}" for name in TIMES],
)
@pytest.mark.parametrize("n", [1, 4, 1000])
def test_a_list_of_draws_and_a_list_sampler_give_the_batch_as_a_list(
    adapter: TypeAdapter, spec: dict[str, Any], kind: type, n: int
) -> None:
    dist = adapter.validate_python(spec)
    for seed in range(20):
        listed, sampled, batched = (np.random.default_rng(seed) for _ in range(3))
        values = dist.list_sampler().sample(listed, n)
        assert values == dist.list_sampler().sample(sampled, n)
        assert values == dist.sample(batched, n).tolist()
        assert all(type(value) is kind for value in values)
        assert listed.random() == sampled.random() == batched.random()


@pytest.mark.parametrize("spec", TIMES.values(), ids=TIMES.keys())
def test_think_time_sample_mean_is_the_exact_mean(spec: dict[str, Any]) -> None:
    dist = TIME.validate_python(spec)
    draws = dist.sample(np.random.default_rng(5), N)
    assert draws.dtype == np.float64 and draws.shape == (N,)
    assert abs(draws.mean() - dist.mean) <= Z * _time_sd(dist) / math.sqrt(N)
    assert draws.min() >= 0
    if dist.dist == "uniform":
        assert dist.low_s <= draws.min() and draws.max() <= dist.high_s


def test_lognormal_think_times_follow_their_law() -> None:
    dist = TIME.validate_python(TIMES["lognormal"])
    draws = dist.sample(np.random.default_rng(6), 100_000)
    law = stats.lognorm(dist.sigma, scale=dist.median_s)
    assert stats.kstest(draws, law.cdf).pvalue > 1e-6  # a false alarm at level 1e-6


@pytest.mark.parametrize("spec", TIMES.values(), ids=TIMES.keys())
def test_one_think_time_is_a_python_float_and_the_first_of_a_batch(spec: dict[str, Any]) -> None:
    dist = TIME.validate_python(spec)
    for seed in range(20):
        one = dist.sample(np.random.default_rng(seed))
        assert type(one) is float
        assert one == dist.sample(np.random.default_rng(seed), 5)[0]


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "uniform", "low": 10, "high": 9},
        {"dist": "uniform", "low": 0, "high": 9},
        {"dist": "empirical", "values": [1, 2, 3], "weights": [1, 1]},
        {"dist": "empirical", "values": [1, 2], "weights": [0, 0]},
        {"dist": "empirical", "values": [1, 2], "weights": [-1, 2]},
        {"dist": "empirical", "values": []},
        {"dist": "empirical", "values": [0, 2]},
        {"dist": "lognormal", "median": 100, "sigma": 0},
        {"dist": "lognormal", "median": 0, "sigma": 1},
        {"dist": "lognormal", "median": 100, "sigma": 1, "max": 0},
        {"dist": "normal", "mean": 100, "std": -1},
        {"dist": "constant", "value": 0},
        {"dist": "constant", "value": 10, "max": 20},  # no clip on a constant
        {"dist": "pareto", "alpha": 2},
    ],
)
def test_invalid_length_parameters_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LENGTH.validate_python(spec)


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "uniform", "low_s": 3, "high_s": 1},
        {"dist": "uniform", "low_s": -1, "high_s": 1},
        {"dist": "exponential", "mean_s": 0},
        {"dist": "lognormal", "median_s": 10, "sigma": 0},
        {"dist": "constant", "value_s": -1},
    ],
)
def test_invalid_think_time_parameters_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TIME.validate_python(spec)


def _pmf_mean(dist: Any) -> float:
    """`mean` as it was computed before: the pmf summed over the whole support 1..max."""
    return float(np.dot(_pmf(dist), np.arange(1, dist.max + 1)))


@pytest.mark.parametrize(
    ("spec", "closed_form_tail"),
    [
        ({"dist": "lognormal", "median": 20, "sigma": 1.5, "max": 100_000}, True),
        ({"dist": "lognormal", "median": 1, "sigma": 4, "max": 100_000}, True),
        ({"dist": "lognormal", "median": 1000, "sigma": 2, "max": 4000}, False),
        ({"dist": "lognormal", "median": 200, "sigma": 0.6, "max": 50_000}, True),
        ({"dist": "lognormal", "median": 3, "sigma": 0.5, "max": 7}, False),
        ({"dist": "normal", "mean": 500, "std": 100, "max": 20_000}, True),
        ({"dist": "normal", "mean": -3, "std": 2, "max": 50}, False),
        ({"dist": "normal", "mean": 100, "std": 1000, "max": 1}, False),
    ],
)
def test_clipped_mean_equals_the_pmf_summed_over_the_whole_support(
    spec: dict[str, Any], closed_form_tail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = LENGTH.validate_python(spec)
    tails_from = []
    integral = type(dist)._sf_integral

    def spy(self: Any, a: float, b: float) -> float:
        tails_from.append(a)
        return integral(self, a, b)

    monkeypatch.setattr(type(dist), "_sf_integral", spy)
    # The old sum differences max CDF values, each off by a few ulps: summation by parts turns
    # sum k (F_k - F_{k-1}) into max - sum F_k, so those errors add up to at most 4 max eps; its
    # dot product of max terms rounds by at most max eps times the mean.
    tolerance = dist.max * EPS * (4 + dist.mean)
    assert abs(dist.mean - _pmf_mean(dist)) <= tolerance
    assert bool(tails_from) == closed_form_tail  # the case covers the path it is meant to


def test_a_normal_without_spread_has_the_rounded_mean_as_its_mean() -> None:
    """A draw of exactly 7.5 rounds half to even, to 8, every time: its pmf is not split."""
    for mean, expected in ((7.5, 8), (8.5, 8), (7.4, 7), (-2.0, 1), (40.0, 30)):
        dist = LENGTH.validate_python({"dist": "normal", "mean": mean, "std": 0, "max": 30})
        assert dist.mean == expected
        assert (dist.sample(np.random.default_rng(7), 100) == expected).all()


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "lognormal", "median": 1000, "sigma": 2},
        {"dist": "lognormal", "median": 1000, "sigma": 1},
    ],
)
def test_clipped_mean_at_the_default_max_is_the_exactly_summed_series(
    spec: dict[str, Any],
) -> None:
    """Heavy tails reach the default max of 10^7 tokens: `mean` is fast enough to call there
    and agrees with the series E[Y] = 1 + sum_{k<max} P(X > k + 1/2) summed term by term."""
    dist = LENGTH.validate_python(spec)
    assert dist.max == 10_000_000
    law = _continuous(dist)
    reference = 1 + math.fsum(law.sf(np.arange(1, dist.max) + 0.5))
    # fsum is exact, the terms good to a few ulps each: the reference is within 4 eps of the
    # series. `mean` sums chunks pairwise (under 32 eps of the sum) and evaluates the tail in
    # closed form from terms no larger than the unclipped mean E[X] (a few eps of E[X]).
    assert abs(dist.mean - reference) <= 64 * EPS * law.mean()
