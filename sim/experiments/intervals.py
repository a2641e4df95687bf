"""Between-replication intervals: the honest kind. Replications are independent runs (seeds
derived from the root seed), so their means are independent and a Student t interval over them
holds its level; paired differences use the same seeds on both sides (common random numbers)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.rng import stream

LEVEL = 0.95


def replication_seeds(seed: int, replications: int) -> list[int]:
    """Replication 0 runs at the root seed itself (what `capsim run` gives); the others at seeds
    drawn from the root seed's own stream, so two root seeds never share replications."""
    derived = stream(seed, "replications").integers(0, 2**31, max(replications - 1, 0))
    return [seed, *(int(s) for s in derived)]


def t_quantile(replications: int) -> float:
    """Student t 0.975 quantile with replications - 1 degrees of freedom."""
    from scipy import stats  # imported here: scipy costs start-up time

    return float(stats.t.ppf(0.5 + LEVEL / 2, replications - 1))


def interval(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student t interval of the mean over replications, NaNs
    dropped (a replication with no sample of that metric); NaN bounds with fewer than two."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan, math.nan
    half = t_quantile(data.size) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean, mean - half, mean + half


def paired_difference(
    baseline: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray
) -> tuple[float, float, float]:
    """(mean, low, high) of other - baseline, replication by replication (same seeds)."""
    return interval(np.asarray(other, dtype=float) - np.asarray(baseline, dtype=float))
