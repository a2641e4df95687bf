"""Arrival processes as the simulator draws them (`arrival_chunks` on a source's own stream):
counts against the integral of the rate within Poisson confidence intervals, gap statistics
against theory, exact spacing, and streams that depend only on the seed and the source."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from helpers import slot_scenario
from pydantic import TypeAdapter
from scipy import stats

from sim.engine import simulate
from sim.rng import stream
from sim.scenario import Scenario
from sim.workload.arrivals import ArrivalProcess, arrival_chunks

Z = 5.0  # standard deviations allowed: a false alarm has probability below 1e-6
EPS = float(np.finfo(float).eps)
PROCESS = TypeAdapter(ArrivalProcess)


def _times(spec: dict[str, Any], duration_s: float, seed: int = 1, source: str = "t") -> np.ndarray:
    """Arrival times of source `source`, drawn as the open-loop source draws them."""
    process = PROCESS.validate_python(spec)
    rng = stream(seed, "traffic", source, "arrivals")
    chunks = list(arrival_chunks(process, rng, duration_s))
    return np.concatenate(chunks) if chunks else np.empty(0)


def _gaps(times: np.ndarray) -> np.ndarray:
    return np.diff(times, prepend=0.0)


def _within_poisson(count: int, expected: float) -> bool:
    return abs(count - expected) <= Z * math.sqrt(expected)


def test_arrival_times_are_ascending_inside_the_window() -> None:
    for spec in (
        {"process": "poisson", "rate_per_s": 50},
        {"process": "gamma", "rate_per_s": 50, "cv": 3},
        {"process": "constant", "rate_per_s": 50},
        {"process": "profile", "points": [[0, 10], [50, 0], [80, 90]], "interpolation": "linear"},
    ):
        times = _times(spec, 100.0)
        assert len(times) > 1000  # several chunks, up to the largest
        # Non-decreasing: gamma gaps with cv 3 (shape 1/9) can be below the resolution of t.
        assert (np.diff(times) >= 0).all() and times[0] >= 0 and times[-1] < 100.0


def test_poisson_count_is_rate_times_window_and_gaps_are_exponential() -> None:
    rate_per_s, window_s = 20.0, 5000.0
    times = _times({"process": "poisson", "rate_per_s": rate_per_s}, window_s)
    assert _within_poisson(len(times), rate_per_s * window_s)
    gaps = _gaps(times)
    # The sample CV of n exponential gaps has standard error 1 / sqrt(n) (delta method).
    assert abs(gaps.std() / gaps.mean() - 1.0) <= Z / math.sqrt(len(gaps))
    assert stats.kstest(gaps, stats.expon(scale=1 / rate_per_s).cdf).pvalue > 1e-6


@pytest.mark.parametrize("cv", [0.5, 2.0, 3.0])
def test_gamma_gaps_have_the_given_cv_and_mean_rate(cv: float) -> None:
    rate_per_s, window_s = 40.0, 5000.0
    times = _times({"process": "gamma", "rate_per_s": rate_per_s, "cv": cv}, window_s)
    gaps = _gaps(times)
    n = len(gaps)
    # Delta method for s / mean of gamma draws (shape 1/cv^2): Var = cv^2 (1 + cv^2) / (2 n).
    assert abs(gaps.std() / gaps.mean() - cv) <= Z * cv * math.sqrt((1 + cv**2) / (2 * n))
    # Mean gap 1 / rate, standard error cv / (rate sqrt(n)).
    assert abs(gaps.mean() - 1 / rate_per_s) <= Z * cv / (rate_per_s * math.sqrt(n))
    # Renewal count: mean rate t + (cv^2 - 1) / 2 from t = 0, variance cv^2 rate t.
    expected = rate_per_s * window_s + (cv**2 - 1) / 2
    assert abs(len(times) - expected) <= Z * cv * math.sqrt(rate_per_s * window_s)


@pytest.mark.parametrize("rate_per_s", [4.0, 3.0, 0.3, 7.0])
def test_constant_arrivals_are_exactly_k_over_rate(rate_per_s: float) -> None:
    """Summing 1/rate would drift by rounding: uneven gaps, and an extra arrival let in before
    the end of a run whose duration is a whole number of gaps."""
    spec = {"process": "constant", "rate_per_s": rate_per_s}
    window_s = 100_000 / rate_per_s
    times = _times(spec, window_s)
    assert np.array_equal(times, np.arange(100_000) / rate_per_s)
    assert len(times) == PROCESS.validate_python(spec).mean_count(window_s)


def test_constant_arrivals_draw_nothing_from_their_stream() -> None:
    spec = {"process": "constant", "rate_per_s": 3.0}
    assert np.array_equal(_times(spec, 1000.0, seed=1), _times(spec, 1000.0, seed=2))


def _rate_integral(points: list[list[float]], interpolation: str, a: float, b: float) -> float:
    """The integral of a rate profile over [a, b], worked out here apart from the code: the end
    rates hold outside the points, the rate is held (step) or linear (linear) in between."""
    times = np.array([t for t, _ in points], dtype=float)
    rates = np.array([r for _, r in points], dtype=float)
    edges = np.unique(np.concatenate(([a, b], times[(times > a) & (times < b)])))
    widths = np.diff(edges)
    if interpolation == "linear":
        at = np.interp(edges, times, rates)  # np.interp holds the end values outside
        return float(np.sum(widths * (at[:-1] + at[1:]) / 2))
    held = rates[np.maximum(np.searchsorted(times, edges[:-1], side="right") - 1, 0)]
    return float(np.sum(widths * held))


PROFILES = {  # points, interpolation, duration_s, 25-s windows where the rate is 0 throughout
    "step": ([[0, 20], [200, 0], [400, 50], [600, 5], [700, 0]], "step", 900.0, 16),
    "step-late-start": ([[100, 0], [150, 30]], "step", 300.0, 6),  # 0 before the first point
    "linear": ([[0, 0], [200, 40], [400, 40], [600, 0], [700, 0], [800, 20]], "linear", 900.0, 4),
    "linear-late-start": ([[50, 10], [100, 30]], "linear", 200.0, 0),  # 10/s before 50 s
}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_counts_are_the_integral_of_the_rate_in_each_window(name: str) -> None:
    points, interpolation, duration_s, zero_rate_windows = PROFILES[name]
    spec = {"process": "profile", "points": points, "interpolation": interpolation}
    times = _times(spec, duration_s)
    edges = np.arange(0.0, duration_s + 1, 25.0)
    counts, _ = np.histogram(times, edges)
    zero_windows = 0
    for (a, b), count in zip(itertools.pairwise(edges), counts, strict=True):
        expected = _rate_integral(points, interpolation, a, b)
        if expected == 0:
            zero_windows += 1
            assert count == 0, f"arrivals in [{a}, {b}), where the rate is 0"
        else:
            assert _within_poisson(count, expected), (a, b, count, expected)
    assert zero_windows == zero_rate_windows
    process = PROCESS.validate_python(spec)
    whole = _rate_integral(points, interpolation, 0.0, duration_s)
    assert process.mean_count(duration_s) == pytest.approx(whole, rel=8 * EPS)


def test_a_profile_that_ends_at_zero_stops() -> None:
    spec = {"process": "profile", "points": [[0, 30], [100, 0]], "interpolation": "linear"}
    times = _times(spec, 1e9)  # ends: no arrival is ever drawn after the rate reaches 0
    assert times.max() < 100
    assert _within_poisson(len(times), 1500)


SPECS = {
    "poisson": {"process": "poisson", "rate_per_s": 5},
    "gamma": {"process": "gamma", "rate_per_s": 5, "cv": 2},
    "profile": {"process": "profile", "points": [[0, 1], [50, 9]], "interpolation": "linear"},
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_a_source_draws_the_same_times_from_the_same_seed(spec: dict[str, Any]) -> None:
    first = _times(spec, 500.0, seed=3)
    assert np.array_equal(first, _times(spec, 500.0, seed=3))
    assert not np.array_equal(first[:10], _times(spec, 500.0, seed=4)[:10])
    assert not np.array_equal(first[:10], _times(spec, 500.0, seed=3, source="other")[:10])


def test_adding_a_source_leaves_a_source_s_arrival_times_unchanged() -> None:
    """Through the simulator: source t gets the times drawn from its own named stream,
    whether or not another source (listed first) draws arrivals too."""
    spec = SPECS["gamma"]
    alone = slot_scenario(servers=16, arrival_rate=1, mean_service_s=0.1, duration_s=300, seed=5)
    data = alone.model_dump(by_alias=True)
    data["traffic"][0]["arrivals"] = spec
    other = dict(data["traffic"][0], name="other", arrivals=SPECS["profile"])
    together = dict(data, traffic=[other, data["traffic"][0]])

    def arrivals_of_t(scenario: dict[str, Any]) -> np.ndarray:
        requests = simulate(Scenario.model_validate(scenario)).requests
        mine = requests.filter(pc.equal(requests["traffic"], "t"))
        return np.sort(mine["arrival_s"].to_numpy())

    drawn = _times(spec, 300.0, seed=5)
    one, two = arrivals_of_t(data), arrivals_of_t(together)
    assert np.array_equal(one, two)
    # The clock adds the delay to the time of the previous arrival: at most an ulp apart.
    np.testing.assert_allclose(one, drawn, rtol=2 * EPS, atol=0)
