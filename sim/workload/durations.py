"""Think-time distributions, seconds: validated parameters, `sample(rng, n)` and an exact `mean`."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.units import Seconds


class ExponentialTime(StrictModel):
    dist: Literal["exponential"]
    mean_s: Seconds = Field(gt=0, description="Mean, s")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_s, n)

    @property
    def mean(self) -> float:
        return self.mean_s


class LogNormalTime(StrictModel):
    dist: Literal["lognormal"]
    median_s: Seconds = Field(gt=0, description="Median, s")
    sigma: float = Field(gt=0, description="Standard deviation of the log, dimensionless")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(np.log(self.median_s), self.sigma, n)

    @property
    def mean(self) -> float:
        return float(self.median_s * np.exp(self.sigma**2 / 2))


class ConstantTime(StrictModel):
    dist: Literal["constant"]
    value_s: Seconds = Field(ge=0, description="Every draw, s")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value_s))

    @property
    def mean(self) -> float:
        return self.value_s


class UniformTime(StrictModel):
    dist: Literal["uniform"]
    low_s: Seconds = Field(ge=0, description="Smallest value, s")
    high_s: Seconds = Field(ge=0, description="Largest value, s")

    @model_validator(mode="after")
    def _ordered(self) -> UniformTime:
        if self.high_s < self.low_s:
            raise ValueError(f"high_s ({self.high_s}) must be >= low_s ({self.low_s})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low_s, self.high_s, n)

    @property
    def mean(self) -> float:
        return (self.low_s + self.high_s) / 2


TimeDist = Annotated[
    ExponentialTime | LogNormalTime | ConstantTime | UniformTime, Field(discriminator="dist")
]
