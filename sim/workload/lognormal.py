"""Lognormal draws as lists, for the handful a session draws at a time (a module of its own so
that the compiled build compiles these loops; the laws' modules define pydantic models).

`rng.lognormal(log_median, sigma, n)` is libm's exp (which math.exp calls) of
log_median + sigma x the stream's next n standard normal draws: these lists hold its values
and leave the stream where it leaves it, without its numpy call's overhead.
"""

from __future__ import annotations

import math

import numpy as np


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
