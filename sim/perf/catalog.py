"""The GPU and model-architecture catalog: data in sim/perf/data/*.yaml, cited there."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import Field

from sim.config_base import StrictModel
from sim.errors import InputError

ComputeDtype = Literal["bf16", "fp8"]


class Gpu(StrictModel):
    """Peak rates and memory of one GPU (datasheet values, dense)."""

    name: str = Field(description="Catalog key, e.g. h100")
    description: str = Field(description="Vendor name of the part")
    dense_bf16_flops_per_s: float = Field(gt=0, description="Dense BF16 Tensor Core peak, FLOP/s")
    dense_fp8_flops_per_s: float | None = Field(
        gt=0, description="Dense FP8 Tensor Core peak, FLOP/s; null when the GPU has no FP8"
    )
    hbm_bytes: float = Field(gt=0, description="HBM capacity, bytes")
    hbm_bytes_per_s: float = Field(gt=0, description="Peak HBM bandwidth, bytes/s")
    interconnect_bytes_per_s: float = Field(
        gt=0, description="NVLink bandwidth per GPU in one direction, bytes/s"
    )
    interconnect_latency_s: float = Field(
        ge=0, description="All-reduce latency when no measurement is fitted, seconds"
    )
    price_per_gpu_hour_usd: float = Field(gt=0, description="Dedicated price, USD per GPU-hour")

    def flops_per_s(self, dtype: ComputeDtype) -> float:
        """Peak for the GEMM input type; FP8 runs at the BF16 rate on GPUs without FP8 units."""
        if dtype == "fp8" and self.dense_fp8_flops_per_s is not None:
            return self.dense_fp8_flops_per_s
        return self.dense_bf16_flops_per_s


class Mla(StrictModel):
    """Multi-head latent attention (DeepSeek-V2/V3): the cache holds one latent per token."""

    q_lora_rank: int = Field(gt=0, description="Query down-projection rank, elements")
    kv_lora_rank: int = Field(gt=0, description="Cached KV latent width, elements")
    qk_nope_head_dim: int = Field(gt=0, description="Per-head query/key width without RoPE")
    qk_rope_head_dim: int = Field(gt=0, description="Per-head (and cached) RoPE width")
    v_head_dim: int = Field(gt=0, description="Per-head value width")


class Moe(StrictModel):
    """Mixture-of-experts MLP: each token runs `active_experts` of `experts`, plus shared ones."""

    experts: int = Field(gt=0, description="Routed experts per MoE layer")
    active_experts: int = Field(gt=0, description="Routed experts per token (top-k)")
    shared_experts: int = Field(ge=0, description="Experts every token runs")
    expert_intermediate_size: int = Field(gt=0, description="Intermediate width of one expert")
    dense_layers: int = Field(ge=0, description="Leading layers with a dense MLP instead")
    expert_bytes_per_param: float = Field(gt=0, description="Stored bytes per expert weight")


class Architecture(StrictModel):
    """Shapes of one decoder-only transformer, as its config.json gives them."""

    name: str = Field(description="Catalog key, e.g. llama-3.1-8b")
    hf_id: str = Field(description="Hugging Face repository the numbers come from")
    layers: int = Field(gt=0, description="Transformer layers")
    hidden_size: int = Field(gt=0, description="Model width, elements")
    heads: int = Field(gt=0, description="Query heads")
    kv_heads: int = Field(gt=0, description="Key/value heads (GQA groups)")
    head_dim: int = Field(gt=0, description="Width of one head, elements")
    intermediate_size: int = Field(gt=0, description="Dense MLP intermediate width, elements")
    vocab_size: int = Field(gt=0, description="Vocabulary, tokens")
    tied_embeddings: bool = Field(description="LM head shares the embedding matrix")
    params_total: float = Field(gt=0, description="Published parameter count")
    params_active: float = Field(gt=0, description="Published parameters used per token")
    weight_bytes_per_param: float = Field(gt=0, description="Bytes per non-expert linear weight")
    compute_dtype: ComputeDtype = Field(description="Input type of the GEMMs (tensor-core rate)")
    mla: Mla | None = Field(None, description="Latent attention; null for (grouped) MHA")
    moe: Moe | None = Field(None, description="Mixture of experts; null for a dense MLP")


def _load(file: str) -> dict[str, dict]:
    text = resources.files("sim.perf").joinpath("data", file).read_text()
    return yaml.safe_load(text)


@cache
def _gpus() -> dict[str, Gpu]:
    return {name: Gpu(name=name, **fields) for name, fields in _load("gpus.yaml").items()}


@cache
def _architectures() -> dict[str, Architecture]:
    entries = _load("architectures.yaml").items()
    return {name: Architecture(name=name, **fields) for name, fields in entries}


def gpu_names() -> list[str]:
    return sorted(_gpus())


def architecture_names() -> list[str]:
    return sorted(_architectures())


def get_gpu(name: str) -> Gpu:
    try:
        return _gpus()[name]
    except KeyError:
        raise InputError(f"unknown gpu {name!r}; valid: {', '.join(gpu_names())}") from None


def get_architecture(name: str) -> Architecture:
    try:
        return _architectures()[name]
    except KeyError:
        raise InputError(
            f"unknown architecture {name!r}; valid: {', '.join(architecture_names())}"
        ) from None
