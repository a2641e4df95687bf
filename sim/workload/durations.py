"""Think-time distributions, seconds: validated parameters, `sample(rng)` for one draw,
`sample(rng, n)` for a vectorised batch (the hot path) and an exact `mean`."""

from __future__ import annotations

from typing import Annotated, Literal, overload

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.units import Seconds
from sim.workload.distributions import log_parameter
from sim.workload.lognormal import LawSampler, ListSampler, LognormalSampler


class _Time(StrictModel):
    """`sample(rng)` is one draw, a Python float; `sample(rng, n)` draws n at once into an array
    (one numpy call, for the hot path) whose first value is the draw `sample(rng)` makes."""

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    @overload
    def sample(self, rng: np.random.Generator) -> float: ...
    @overload
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...
    def sample(self, rng: np.random.Generator, n: int | None = None) -> float | np.ndarray:
        if n is None:
            return float(self._sample(rng, 1)[0])
        return self._sample(rng, n)

    def list_sampler(self) -> ListSampler[float]:
        """`sample(rng, n)` as a list (the same draws), for a few draws at a time on the hot
        path, as a compiled object's method."""
        return LawSampler(self._sample)


class ExponentialTime(_Time):
    dist: Literal["exponential"]
    mean_s: Seconds = Field(gt=0, description="Mean, s")

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_s, n)

    @property
    def mean(self) -> float:
        return self.mean_s


class LogNormalTime(_Time):
    dist: Literal["lognormal"]
    median_s: Seconds = Field(gt=0, description="Median, s")
    sigma: float = Field(gt=0, le=20, description="Standard deviation of the log, dimensionless")

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(np.log(self.median_s), self.sigma, n)

    def list_sampler(self) -> ListSampler[float]:
        return LognormalSampler(log_parameter(self.median_s), self.sigma)

    @property
    def mean(self) -> float:
        return float(self.median_s * np.exp(self.sigma**2 / 2))


class ConstantTime(_Time):
    dist: Literal["constant"]
    value_s: Seconds = Field(ge=0, description="Every draw, s")

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value_s))

    @property
    def mean(self) -> float:
        return self.value_s


class UniformTime(_Time):
    dist: Literal["uniform"]
    low_s: Seconds = Field(ge=0, description="Smallest value, s")
    high_s: Seconds = Field(ge=0, description="Largest value, s")

    @model_validator(mode="after")
    def _ordered(self) -> UniformTime:
        if self.high_s < self.low_s:
            raise ValueError(f"high_s ({self.high_s}) must be >= low_s ({self.low_s})")
        return self

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low_s, self.high_s, n)

    @property
    def mean(self) -> float:
        return (self.low_s + self.high_s) / 2


TimeDist = Annotated[
    ExponentialTime | LogNormalTime | ConstantTime | UniformTime, Field(discriminator="dist")
]
