"""Scenario configuration of a pool's performance model (the `perf:` mapping)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config_base import StrictModel


class RooflinePerf(StrictModel):
    """Iteration time from a roofline of the batch on the pool's GPUs (see docs/performance-model.md)."""

    model: Literal["roofline"] = "roofline"
    compute_efficiency: float | None = Field(
        None, gt=0, le=1, description="Fraction of peak FLOP/s reached; null uses the fitted value"
    )
    memory_efficiency: float | None = Field(
        None, gt=0, le=1, description="Fraction of peak HBM bandwidth reached; null uses the fitted value"
    )
    overhead_s: float | None = Field(
        None, ge=0, description="Fixed cost per iteration, seconds; null uses the fitted value"
    )


class FixedPerf(StrictModel):
    """Each request holds one of `max_num_seqs` slots for exactly `service_s` (queueing tests)."""

    model: Literal["fixed"]
    service_s: float = Field(gt=0, description="Service time of every request, seconds")


class ExponentialPerf(StrictModel):
    """Each request holds one of `max_num_seqs` slots for an exponential time (M/M/c checks)."""

    model: Literal["exponential"]
    mean_service_s: float = Field(gt=0, description="Mean service time, seconds")


PerfConfig = RooflinePerf | FixedPerf | ExponentialPerf
