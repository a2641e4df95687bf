"""Scenario configuration of a pool's performance model (the `perf:` mapping)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config_base import StrictModel
from sim.units import NonNegativeSeconds, Seconds


class RooflinePerf(StrictModel):
    """Iteration time from a roofline of the batch (docs/performance-model.md)."""

    model: Literal["roofline"] = "roofline"
    compute_efficiency: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of peak FLOP/s reached by the linear layers (dimensionless); "
        "null uses the fitted value",
    )
    memory_efficiency: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of peak HBM bandwidth reached reading weights and KV cache "
        "(dimensionless); null uses the fitted value",
    )
    overhead_s: NonNegativeSeconds | None = Field(
        None, description="Fixed cost per iteration, seconds; null uses the calibrated value"
    )
    kv_dtype: Literal["bf16", "fp8"] = Field(
        "bf16", description="KV-cache element type: bf16 (2 bytes) or fp8 (1 byte)"
    )
    activation_reserve_gb: float = Field(
        0.0,
        ge=0,
        le=1e6,
        description="Memory per GPU held back from the KV cache for activations, GB (1e9 bytes)",
    )
    draft_tokens: int = Field(
        0,
        ge=0,
        le=16,
        description="Speculative decoding: tokens drafted per decode step (0 turns it off), tokens",
    )
    acceptance_rate: float = Field(
        0.7,
        ge=0,
        lt=1,
        description="Speculative decoding: probability that each drafted token is accepted "
        "(dimensionless)",
    )
    draft_cost_ratio: float = Field(
        0.05,
        ge=0,
        le=10,
        description="Speculative decoding: time to draft one token as a fraction of a plain decode "
        "step of the same batch (dimensionless; about 1/layers for a one-layer MTP or EAGLE head)",
    )


class FixedPerf(StrictModel):
    """Each request holds one of `max_num_seqs` slots for exactly `service_s` (queueing tests)."""

    model: Literal["fixed"]
    service_s: Seconds = Field(gt=0, description="Service time of every request, seconds")


class ExponentialPerf(StrictModel):
    """Each request holds one of `max_num_seqs` slots for an exponential time (M/M/c checks)."""

    model: Literal["exponential"]
    mean_service_s: Seconds = Field(gt=0, description="Mean service time, seconds")


PerfConfig = RooflinePerf | FixedPerf | ExponentialPerf
