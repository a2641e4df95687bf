"""summarize's own percentile and batch-mean arithmetic gives numpy's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from sim.results.summary import CI_BATCHES, PERCENTILES, batch_means, percentiles_of_sorted

SIZES = [*range(1, 60), 99, 100, 101, 1000, 8192 * CI_BATCHES + 7, 123_457]


def _bits(values: np.ndarray | list[float]) -> list[int]:
    return np.asarray(values, np.float64).view(np.int64).tolist()


@pytest.mark.parametrize("size", SIZES)
def test_percentiles_of_sorted_are_np_percentile(size: int) -> None:
    rng = np.random.default_rng(size)
    skewed = rng.lognormal(0.0, 2.0, size)
    ties = rng.integers(0, 4, size) * 0.1
    for values in (skewed, ties, np.zeros(size)):
        expected = np.percentile(values, PERCENTILES)
        assert _bits(percentiles_of_sorted(np.sort(values))) == _bits(expected)


@pytest.mark.parametrize("size", [s for s in SIZES if s >= CI_BATCHES])
def test_batch_means_are_the_means_of_array_split(size: int) -> None:
    values = np.random.default_rng(size).lognormal(0.0, 2.0, size)
    expected = [batch.mean() for batch in np.array_split(values, CI_BATCHES)]
    assert _bits(batch_means(values)) == _bits(expected)
