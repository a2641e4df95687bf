"""Draws as lists, for the handful a session draws at a time, in a module of its own so that
the compiled build compiles them: the laws' modules define pydantic models, whose methods run
interpreted (a session's three laws called through them cost about 1.5 us each).

`rng.lognormal(log_median, sigma, n)` is libm's exp (which math.exp calls) of
log_median + sigma x the stream's next n standard normal draws: these lists hold its values
and leave the stream where it leaves it, without its numpy call's overhead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class ListSampler(Generic[T]):
    """n draws of one law as a list: what a law's `list_sampler()` gives its hot callers."""

    def sample(self, rng: np.random.Generator, n: int) -> list[T]:
        raise NotImplementedError


class LawSampler(ListSampler[T]):
    """Any law, through its own batch draw (`_sample(rng, n)`, an array) as a list."""

    def __init__(self, sample: Callable[[np.random.Generator, int], np.ndarray]) -> None:
        self._sample = sample

    def sample(self, rng: np.random.Generator, n: int) -> list[T]:
        return self._sample(rng, n).tolist()


class LognormalSampler(ListSampler[float]):
    """`lognormal_list` of one law's parameters."""

    def __init__(self, log_median: float, sigma: float) -> None:
        self._log_median = log_median
        self._sigma = sigma

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        return lognormal_list(rng, self._log_median, self._sigma, n)


class LognormalLengthSampler(ListSampler[int]):
    """`lognormal_lengths` of one law's parameters."""

    def __init__(self, log_median: float, sigma: float, top: int) -> None:
        self._log_median = log_median
        self._sigma = sigma
        self._top = top

    def sample(self, rng: np.random.Generator, n: int) -> list[int]:
        return lognormal_lengths(rng, self._log_median, self._sigma, n, self._top)


def lognormal_list(
    rng: np.random.Generator, log_median: float, sigma: float, n: int
) -> list[float]:
    """`rng.lognormal(log_median, sigma, n).tolist()`."""
    normals: list[float] = rng.standard_normal(n).tolist()
    return [math.exp(log_median + sigma * z) for z in normals]


def lognormal_lengths(
    rng: np.random.Generator, log_median: float, sigma: float, n: int, top: int
) -> list[int]:
    """The draws of `lognormal_list` rounded half to even (as np.rint) and clipped to [1, top],
    as whole tokens."""
    draws = lognormal_list(rng, log_median, sigma, n)
    return [top if x >= top else max(round(x), 1) for x in draws]
