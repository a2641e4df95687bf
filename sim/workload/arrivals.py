"""Open-loop arrival processes, drawn in vectorised chunks of arrival times.

Every process has `rate_at(t_s)` and `mean_count(duration_s)`, the exact expected number of
arrivals in [0, duration_s), so tests can check generated counts against theory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from sim.config_base import StrictModel
from sim.units import Seconds

CHUNK = 8192


class PoissonArrivals(StrictModel):
    process: Literal["poisson"]
    rate_per_s: float = Field(gt=0, description="Mean arrivals per second")

    def gaps_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(1.0 / self.rate_per_s, n)

    def rate_at(self, t_s: float) -> float:
        return self.rate_per_s

    def mean_count(self, duration_s: float) -> float:
        return self.rate_per_s * duration_s


class GammaArrivals(StrictModel):
    """A renewal process with gamma gaps: cv > 1 is burstier than Poisson, cv < 1 smoother."""

    process: Literal["gamma"]
    rate_per_s: float = Field(gt=0, description="Mean arrivals per second")
    cv: float = Field(
        ge=1e-3,
        le=1e3,
        description="Coefficient of variation of the gaps (1 = Poisson); 1e-3 is all but "
        "constant (use constant below), 1e3 all but one burst",
    )

    def gaps_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, 1.0 / (self.rate_per_s * shape), n)

    def rate_at(self, t_s: float) -> float:
        return self.rate_per_s

    def mean_count(self, duration_s: float) -> float:
        # Renewal process started at 0 (not stationary): approximate for cv != 1 at short horizons.
        return self.rate_per_s * duration_s


class ConstantArrivals(StrictModel):
    process: Literal["constant"]
    rate_per_s: float = Field(gt=0, description="Arrivals per second, evenly spaced")

    def times_s(self, first: int, n: int) -> np.ndarray:
        """Arrivals first..first+n-1 at k / rate: summed gaps would drift by rounding, spacing
        them unevenly and letting an extra arrival in before the end of a long run."""
        return np.arange(first, first + n) / self.rate_per_s

    def rate_at(self, t_s: float) -> float:
        return self.rate_per_s

    def mean_count(self, duration_s: float) -> float:
        """How many k >= 0 have k / rate < duration_s, as `times_s` computes them."""
        n = max(int(np.ceil(duration_s * self.rate_per_s)), 0)
        while n > 0 and (n - 1) / self.rate_per_s >= duration_s:
            n -= 1
        while n / self.rate_per_s < duration_s:
            n += 1
        return float(n)


class ProfileArrivals(StrictModel):
    """Poisson arrivals whose rate follows a profile over the run (diurnal shapes, ramps).

    `points` are (time, rate) pairs; between them the rate is held (`step`) or interpolated
    (`linear`); before the first point and after the last the end rates hold. Arrival times are
    exact: unit-rate Poisson points are mapped through the inverse cumulative rate.
    """

    process: Literal["profile"]
    points: list[tuple[Seconds, Annotated[float, Field(ge=0)]]] = Field(
        min_length=1,
        max_length=100_000,
        description="[time (s or '2h'), rate per second] pairs, times increasing",
    )
    interpolation: Literal["step", "linear"] = Field(
        "step", description="Rate between points: held (step) or linearly interpolated"
    )

    @field_validator("points")
    @classmethod
    def _increasing(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        times = [t for t, _ in points]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("point times must be strictly increasing")
        if times[0] < 0:
            raise ValueError("point times must be >= 0")
        if all(rate == 0 for _, rate in points):
            raise ValueError("at least one rate must be > 0")
        return points

    def _segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Segment starts, start rates, slopes and cumulative rate at each start (from t=0)."""
        times = np.array([0.0] + [t for t, _ in self.points], dtype=float)
        rates = np.array([self.points[0][1]] + [r for _, r in self.points], dtype=float)
        slopes = np.zeros_like(times)
        if self.interpolation == "linear":
            widths = np.diff(times)
            with np.errstate(divide="ignore", invalid="ignore"):
                slopes[:-1] = np.where(widths > 0, np.diff(rates) / widths, 0.0)
        widths = np.diff(times)
        areas = rates[:-1] * widths + 0.5 * slopes[:-1] * widths**2
        cumulative = np.concatenate(([0.0], np.cumsum(areas)))
        return times, rates, slopes, cumulative

    def rate_at(self, t_s: float) -> float:
        times, rates, slopes, _ = self._segments()
        i = int(np.searchsorted(times, t_s, side="right") - 1)
        return float(rates[i] + slopes[i] * (t_s - times[i]))

    def cumulative(self, t_s: np.ndarray) -> np.ndarray:
        times, rates, slopes, cum = self._segments()
        i = np.searchsorted(times, t_s, side="right") - 1
        u = t_s - times[i]
        return cum[i] + rates[i] * u + 0.5 * slopes[i] * u**2

    def inverse_cumulative(self, y: np.ndarray) -> np.ndarray:
        times, rates, slopes, cum = self._segments()
        # The last segment with cum <= y whose rate is positive somewhere (skip zero-rate gaps).
        i = np.searchsorted(cum, y, side="right") - 1
        d = y - cum[i]
        root = np.sqrt(np.maximum(rates[i] ** 2 + 2.0 * slopes[i] * d, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(d > 0, 2.0 * d / (rates[i] + root), 0.0)
        return times[i] + u

    def mean_count(self, duration_s: float) -> float:
        return float(self.cumulative(np.array([duration_s]))[0])


ArrivalProcess = Annotated[
    PoissonArrivals | GammaArrivals | ConstantArrivals | ProfileArrivals,
    Field(discriminator="process"),
]


def arrival_chunks(
    process: ArrivalProcess, rng: np.random.Generator, duration_s: float
) -> Iterator[np.ndarray]:
    """Arrival times in [0, duration_s), non-decreasing, in chunks of 64 first, then twice as many
    each time up to CHUNK (a slow source among thousands holds little)."""
    last = 0.0
    drawn = 0
    size = 64
    while True:
        if isinstance(process, ProfileArrivals):
            unit = last + np.cumsum(rng.exponential(1.0, size))
            last = float(unit[-1])
            times = process.inverse_cumulative(unit)
        elif isinstance(process, ConstantArrivals):
            times = process.times_s(drawn, size)  # evenly spaced from t = 0
        else:
            times = last + np.cumsum(process.gaps_s(rng, size))
            last = float(times[-1])
        drawn += size
        inside = times[times < duration_s]
        if inside.size:
            yield inside
        if inside.size < times.size:
            return
        size = min(size * 2, CHUNK)
