"""Token-length distributions: validated parameters, `sample(rng)` for one draw,
`sample(rng, n)` for a vectorised batch (the hot path) and an exact `mean`.

Samples are whole token counts: the continuous draw is rounded and clipped to [1, max]. `mean` is
the exact mean of that integer distribution, not of the continuous law (see `_Clipped.mean`).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Annotated, Literal, overload

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.workload.lognormal import LawSampler, ListSampler, LognormalLengthSampler

MAX_TOKENS = 10_000_000  # the largest length of anything in tokens (a prompt, an answer)
# Parameters of the continuous laws stay within a factor of the clip: beyond it every draw is max.
_MAX_PARAMETER = 100.0 * MAX_TOKENS
_EPS = float(np.finfo(float).eps)
# sup |B_3(t)| / 3! over [0, 1], B_3 the third Bernoulli polynomial: the Euler-Maclaurin remainder
# of a midpoint sum after its h^2 term is at most this times the integral of |g'''|.
_EM_REMAINDER = math.sqrt(3) / 36 / 6
_FIRST_CHUNK = 1024
_LAST_CHUNK = 1 << 20  # bounds the memory of one step of the sum
_MEANS: dict[tuple, float] = {}  # the clipped laws' means, by class and parameters


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _ndtr(x: np.ndarray | float) -> np.ndarray:
    from scipy.special import ndtr  # imported here: scipy costs start-up time

    return np.asarray(ndtr(x))


@cache
def log_parameter(x: float) -> float:
    """numpy's log of a law's parameter (math.log may differ from it in the last bit), once."""
    return float(np.log(x))


class _Length(StrictModel):
    """`sample(rng)` is one draw, a Python int; `sample(rng, n)` draws n at once into an array
    (one numpy call, for the hot path) whose first value is the draw `sample(rng)` makes."""

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    @overload
    def sample(self, rng: np.random.Generator) -> int: ...
    @overload
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...
    def sample(self, rng: np.random.Generator, n: int | None = None) -> int | np.ndarray:
        if n is None:
            return int(self._sample(rng, 1)[0])
        return self._sample(rng, n)

    def list_sampler(self) -> ListSampler[int]:
        """`sample(rng, n)` as a list of ints (the same draws), for a few draws at a time on the
        hot path, as a compiled object's method."""
        return LawSampler(self._sample)


class _Clipped(_Length):
    """A continuous law X rounded to whole tokens and clipped to [1, max]."""

    max: int = Field(
        MAX_TOKENS,
        ge=1,
        le=MAX_TOKENS,
        description="Largest value, tokens (larger draws are clipped)",
    )

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def _sf(self, x: np.ndarray) -> np.ndarray:
        """P(X > x), accurate far in the tail (not 1 - cdf)."""
        raise NotImplementedError

    def _sf_integral(self, a: float, b: float) -> float:
        """The integral of P(X > x) over [a, b], in closed form."""
        raise NotImplementedError

    def _density(self, x: float) -> tuple[float, float]:
        """The density of X at x and its slope: the Euler-Maclaurin terms of the tail."""
        raise NotImplementedError

    def _convex_from(self, x: float) -> bool:
        """Whether the density is convex on [x, inf): then its slope bounds the remainder."""
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # np.clip's values, at a third less of its per-call cost (a session draws a handful)
        return np.minimum(np.maximum(np.rint(self._draw(rng, n)), 1), self.max).astype(np.int64)

    @property
    def mean(self) -> float:
        """The exact mean of the draws (`_exact_mean`), computed once per law: thousands of
        traffic sources usually share a few laws (YAML anchors), and each sum costs about
        0.2 ms."""
        key = (type(self), tuple(self))  # the class and its (field, value) pairs
        mean = _MEANS.get(key)
        if mean is None:
            mean = _MEANS[key] = self._exact_mean()
        return mean

    def _exact_mean(self) -> float:
        """E[Y] = 1 + sum_{k=1}^{max-1} P(X > k + 1/2), Y the rounded and clipped draw.

        Summing the pmf over all of 1..max (10^7 values by default) took seconds. The terms are
        summed in growing chunks until they are exactly 0 in float, or until the tail from k = K
        on can be replaced by the Euler-Maclaurin form of its midpoint sum,
        integral_K^max P(X > x) dx + (f(max) - f(K)) / 24 (f the density of X),
        whose remainder is at most _EM_REMAINDER |f'(K)| once f is convex beyond K: it is
        replaced only when that bound is below the float resolution of the sum.
        """
        total = 1.0
        k = 1  # the next term
        size = _FIRST_CHUNK
        while k < self.max:
            end = min(k + size, self.max)
            terms = self._sf(np.arange(k, end) + 0.5)
            total += float(terms.sum())
            k = end
            if k == self.max or terms[-1] == 0.0:  # the terms decrease: the rest are 0 too
                return total
            if self._convex_from(k):
                f_k, slope_k = self._density(k)
                if _EM_REMAINDER * abs(slope_k) <= 0.25 * _EPS * total:
                    f_max, _ = self._density(self.max)
                    return total + self._sf_integral(k, self.max) + (f_max - f_k) / 24
            size = min(2 * size, _LAST_CHUNK)
        return total


class LogNormalLength(_Clipped):
    dist: Literal["lognormal"]
    median: float = Field(gt=0, le=_MAX_PARAMETER, description="Median, tokens")
    sigma: float = Field(gt=0, le=20, description="Standard deviation of the log, dimensionless")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(np.log(self.median), self.sigma, n)

    def list_sampler(self) -> ListSampler[int]:
        return LognormalLengthSampler(log_parameter(self.median), self.sigma, self.max)

    def _z(self, x: np.ndarray | float) -> np.ndarray:
        return np.asarray((np.log(x) - np.log(self.median)) / self.sigma)

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return _ndtr(-self._z(x))

    def _sf_integral(self, a: float, b: float) -> float:
        # By parts: [x P(X > x)]_a^b + E[X; a < X <= b], the lognormal's partial mean.
        z_a, z_b = float(self._z(a)), float(self._z(b))
        sf_a, sf_b, upper_a, upper_b = _ndtr(
            -np.array([z_a, z_b, z_a - self.sigma, z_b - self.sigma])
        )
        mean_x = self.median * math.exp(self.sigma**2 / 2)
        return float(b * sf_b - a * sf_a + mean_x * (upper_a - upper_b))

    def _density(self, x: float) -> tuple[float, float]:
        z = float(self._z(x))
        f = _phi(z) / (self.sigma * x)
        return f, -f * (z + self.sigma) / (self.sigma * x)

    def _convex_from(self, x: float) -> bool:
        # f'' = f (w^2 + sigma w - 1) / (sigma x)^2 with w = z + sigma, growing with x: > 0 once
        # w >= 1.
        return float(self._z(x)) + self.sigma >= 1.0


class NormalLength(_Clipped):
    dist: Literal["normal"]
    mean_tokens: float = Field(
        alias="mean",
        ge=-_MAX_PARAMETER,
        le=_MAX_PARAMETER,
        description="Mean before clipping at 1, tokens",
    )
    std: float = Field(ge=0, le=_MAX_PARAMETER, description="Standard deviation, tokens")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mean_tokens, self.std, n)

    @property
    def mean(self) -> float:
        if self.std == 0:  # every draw is the mean, rounded half to even as np.rint does
            return float(np.clip(np.rint(self.mean_tokens), 1, self.max))
        return super().mean

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return _ndtr((self.mean_tokens - x) / self.std)

    def _sf_integral(self, a: float, b: float) -> float:
        # By parts: [(x - mean) P(X > x)]_a^b + std (phi(z_a) - phi(z_b)).
        z_a, z_b = (a - self.mean_tokens) / self.std, (b - self.mean_tokens) / self.std
        sf_a, sf_b = _ndtr(-np.array([z_a, z_b]))
        return float(self.std * (z_b * sf_b - z_a * sf_a + _phi(z_a) - _phi(z_b)))

    def _density(self, x: float) -> tuple[float, float]:
        z = (x - self.mean_tokens) / self.std
        f = _phi(z) / self.std
        return f, -f * z / self.std

    def _convex_from(self, x: float) -> bool:
        # f'' = f (z^2 - 1) / std^2: > 0 beyond one standard deviation above the mean.
        return x - self.mean_tokens > self.std


class ConstantLength(_Length):
    dist: Literal["constant"]
    value: int = Field(ge=1, le=MAX_TOKENS, description="Every draw, tokens")

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.int64)

    @property
    def mean(self) -> float:
        return float(self.value)


class UniformLength(_Length):
    dist: Literal["uniform"]
    low: int = Field(ge=1, le=MAX_TOKENS, description="Smallest value, tokens (inclusive)")
    high: int = Field(ge=1, le=MAX_TOKENS, description="Largest value, tokens (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high, n, endpoint=True, dtype=np.int64)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


class EmpiricalLength(_Length):
    dist: Literal["empirical"]
    values: list[Annotated[int, Field(ge=1, le=MAX_TOKENS)]] = Field(
        min_length=1, max_length=1_000_000, description="Values, tokens"
    )
    weights: list[Annotated[float, Field(ge=0, le=1e12)]] | None = Field(
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

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.int64)
        return values[rng.choice(len(values), size=n, p=self._probs())]

    @property
    def mean(self) -> float:
        return float(np.dot(self._probs(), self.values))


LengthDist = Annotated[
    LogNormalLength | NormalLength | ConstantLength | UniformLength | EmpiricalLength,
    Field(discriminator="dist"),
]
