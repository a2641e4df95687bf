"""Token-length distributions: validated parameters, vectorised `sample(rng, n)` and an exact
`mean`.

Samples are whole token counts: the continuous draw is rounded and clipped to [1, max]. `mean` is
the exact mean of that integer distribution (summed over its support), not of the continuous law.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel

_MAX_TOKENS = 10_000_000


class _Clipped(StrictModel):
    """A continuous law rounded to whole tokens and clipped to [1, max]."""

    max: int = Field(
        _MAX_TOKENS, ge=1, description="Largest value, tokens (larger draws are clipped)"
    )

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.clip(np.rint(self._draw(rng, n)), 1, self.max).astype(np.int64)

    @property
    def mean(self) -> float:
        edges = np.arange(1, self.max) + 0.5  # value k covers [k - 0.5, k + 0.5)
        cdf = self._cdf(edges)
        probs = np.diff(np.concatenate(([0.0], cdf, [1.0])))
        return float(np.dot(probs, np.arange(1, self.max + 1)))


class LogNormalLength(_Clipped):
    dist: Literal["lognormal"]
    median: float = Field(gt=0, description="Median, tokens")
    sigma: float = Field(gt=0, description="Standard deviation of the log, dimensionless")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(np.log(self.median), self.sigma, n)

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr  # imported here: scipy costs start-up time

        return ndtr((np.log(x) - np.log(self.median)) / self.sigma)


class NormalLength(_Clipped):
    dist: Literal["normal"]
    mean_tokens: float = Field(alias="mean", description="Mean before clipping at 1, tokens")
    std: float = Field(ge=0, description="Standard deviation, tokens")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mean_tokens, self.std, n)

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr

        return ndtr((x - self.mean_tokens) / max(self.std, 1e-12))


class ConstantLength(StrictModel):
    dist: Literal["constant"]
    value: int = Field(ge=1, description="Every draw, tokens")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.int64)

    @property
    def mean(self) -> float:
        return float(self.value)


class UniformLength(StrictModel):
    dist: Literal["uniform"]
    low: int = Field(ge=1, description="Smallest value, tokens (inclusive)")
    high: int = Field(ge=1, description="Largest value, tokens (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high, n, endpoint=True, dtype=np.int64)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


class EmpiricalLength(StrictModel):
    dist: Literal["empirical"]
    values: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, description="Values, tokens")
    weights: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="Relative weight of each value; null: all equal"
    )

    @model_validator(mode="after")
    def _weights_match(self) -> EmpiricalLength:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights has {len(self.weights)} entries, values has {len(self.values)}"
                )
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be 0")
        return self

    def _probs(self) -> np.ndarray:
        w = np.ones(len(self.values)) if self.weights is None else np.asarray(self.weights, float)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.int64)
        return values[rng.choice(len(values), size=n, p=self._probs())]

    @property
    def mean(self) -> float:
        return float(np.dot(self._probs(), self.values))


LengthDist = Annotated[
    LogNormalLength | NormalLength | ConstantLength | UniformLength | EmpiricalLength,
    Field(discriminator="dist"),
]
