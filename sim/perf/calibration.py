"""Fitted efficiency factors and kernel overheads per GPU, and the op times they give.

The coefficients live in sim/perf/data/calibration.json, written by `python -m sim.perf.fit`.
The op-time methods here are the only formulas: the roofline model sums them and the fit
matches them to measured kernel times.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from pydantic import Field

from sim.config_base import StrictModel
from sim.errors import InputError
from sim.perf.catalog import ComputeDtype, Gpu
from sim.perf.shapes import ElementwiseKind, Gemm

CALIBRATION_FILE = "calibration.json"


class Calibration(StrictModel):
    """How close one GPU type gets to its datasheet peaks, and what each kernel costs."""

    measured_on: str = Field(description="GPU whose measurements gave these values")
    gemm_compute_efficiency: float = Field(gt=0, le=1, description="Fraction of peak FLOP/s")
    gemm_memory_efficiency: float = Field(gt=0, le=1, description="Fraction of peak HBM bytes/s")
    gemm_kernel_s: float = Field(ge=0, description="Fixed time of one GEMM kernel, seconds")
    elementwise_norm_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by RMSNorm (and sampling)"
    )
    elementwise_rope_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by rotary embedding"
    )
    elementwise_activation_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by the gated activation"
    )
    elementwise_copy_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by adds and cache writes"
    )
    elementwise_embedding_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by the embedding lookup"
    )
    elementwise_kernel_s: float = Field(ge=0, description="Fixed time of one elementwise kernel, s")
    attention_compute_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak FLOP/s reached by prefill attention"
    )
    attention_prefill_kernel_s: float = Field(
        ge=0, description="Fixed time of one prefill attention kernel, s"
    )
    attention_decode_kernel_s: float = Field(
        ge=0, description="Fixed time of one decode attention kernel, s"
    )
    attention_seq_s: float = Field(ge=0, description="Decode attention time per sequence, s")
    attention_decode_memory_efficiency: float = Field(
        gt=0, le=1, description="Fraction of peak HBM bytes/s reached by decode attention"
    )
    attention_serial_s_per_token: float = Field(
        ge=0,
        description="Prefill attention floor per context token of one sequence, s: a sequence's "
        "keys are streamed by one thread block per head, whatever the batch",
    )
    allreduce_latency_s: float = Field(ge=0, description="Fixed time of one all-reduce, s")
    allreduce_bandwidth_efficiency: float = Field(
        gt=0, le=1, description="Fraction of one-way NVLink bandwidth reached by a ring all-reduce"
    )
    iteration_overhead_s: float = Field(
        ge=0, description="Host time per iteration not hidden behind the GPU, s"
    )

    def gemm_time_s(self, gpu: Gpu, dtype: ComputeDtype, gemm: Gemm, tokens: float) -> float:
        """Roofline of one GEMM kernel: compute- or bandwidth-bound, plus its fixed cost."""
        compute_s = gemm.flops(tokens) / (gpu.flops_per_s(dtype) * self.gemm_compute_efficiency)
        memory_s = gemm.bytes(tokens) / (gpu.hbm_bytes_per_s * self.gemm_memory_efficiency)
        return self.gemm_kernel_s + max(compute_s, memory_s)

    def elementwise_time_s(self, gpu: Gpu, kind: ElementwiseKind, bytes_moved: float) -> float:
        efficiency = getattr(self, f"elementwise_{kind}_efficiency")
        return self.elementwise_kernel_s + bytes_moved / (gpu.hbm_bytes_per_s * efficiency)

    def prefill_attention_time_s(
        self, gpu: Gpu, flops: float, kv_bytes: float, longest_context_tokens: float
    ) -> float:
        """One prefill attention kernel over chunks with `flops` in all and the longest context."""
        compute_s = flops / (gpu.dense_bf16_flops_per_s * self.attention_compute_efficiency)
        memory_s = kv_bytes / (gpu.hbm_bytes_per_s * self.gemm_memory_efficiency)
        serial_s = longest_context_tokens * self.attention_serial_s_per_token
        return self.attention_prefill_kernel_s + max(compute_s, memory_s, serial_s)

    def decode_attention_s_per_token(
        self, gpu: Gpu, flops_per_token: float, kv_bytes_per_token: float
    ) -> float:
        """Decode attention time per context token (linear in the summed context)."""
        compute_s = flops_per_token / (
            gpu.dense_bf16_flops_per_s * self.attention_compute_efficiency
        )
        bandwidth = gpu.hbm_bytes_per_s * self.attention_decode_memory_efficiency
        return max(compute_s, kv_bytes_per_token / bandwidth)

    def decode_attention_time_s(
        self,
        gpu: Gpu,
        seqs: int,
        context_tokens: float,
        flops_per_token: float,
        kv_bytes_per_token: float,
    ) -> float:
        per_token_s = self.decode_attention_s_per_token(gpu, flops_per_token, kv_bytes_per_token)
        return (
            self.attention_decode_kernel_s
            + self.attention_seq_s * seqs
            + per_token_s * context_tokens
        )

    def allreduce_time_s(self, gpu: Gpu, bytes_moved: float, workers: int) -> float:
        """Ring all-reduce: each GPU sends and receives 2 (n - 1) / n of the buffer."""
        if workers <= 1:
            return 0.0
        rate = gpu.interconnect_bytes_per_s * self.allreduce_bandwidth_efficiency
        return self.allreduce_latency_s + 2 * (workers - 1) / workers * bytes_moved / rate

    def allgather_time_s(self, gpu: Gpu, bytes_moved: float, workers: int) -> float:
        """Ring all-gather of `bytes_moved` in all: half the traffic of an all-reduce."""
        if workers <= 1:
            return 0.0
        rate = gpu.interconnect_bytes_per_s * self.allreduce_bandwidth_efficiency
        return self.allreduce_latency_s + (workers - 1) / workers * bytes_moved / rate


@cache
def _calibrations() -> dict[str, Calibration]:
    text = resources.files("sim.perf").joinpath("data", CALIBRATION_FILE).read_text()
    return {gpu: Calibration(**fields) for gpu, fields in json.loads(text)["gpus"].items()}


def get_calibration(gpu_name: str) -> Calibration:
    try:
        return _calibrations()[gpu_name]
    except KeyError:
        raise InputError(
            f"no calibration for gpu {gpu_name!r} in sim/perf/data/{CALIBRATION_FILE}; "
            "run `python -m sim.perf.fit` after adding it to the catalog"
        ) from None
