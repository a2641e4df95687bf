"""What one GPU of a tensor-parallel replica computes and moves, op by op.

The roofline model and the calibration fit both price these shapes, so a fitted efficiency
means the same thing in both places. Sizes are per GPU: column-parallel weights split their
output, row-parallel weights their input, KV heads are split until each GPU holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sim.errors import InputError
from sim.perf.catalog import Architecture

ACTIVATION_BYTES = 2.0  # BF16 activations between kernels
EMBEDDING_BYTES_PER_PARAM = 2.0  # embeddings and LM head are BF16 in every catalog checkpoint
KV_DTYPE_BYTES = {"bf16": 2.0, "fp8": 1.0}
# Sampling reads and writes FP32 logits over the whole vocabulary about four times (cast,
# softmax, top-p/top-k filtering, draw): an assumption, not a measurement.
SAMPLING_BYTES_PER_LOGIT = 16.0


def expected_experts(experts: int, active: int, tokens: float) -> float:
    """Distinct experts a batch touches when each token picks `active` of `experts` at random."""
    return experts * (1.0 - (1.0 - active / experts) ** tokens)


@dataclass(frozen=True)
class Gemm:
    """One matrix-multiplication kernel; routed experts are one grouped kernel."""

    name: str
    in_features: float
    out_features: float
    weight_bytes_per_param: float
    experts: int = 0  # routed experts held by the kernel; 0 for a plain weight
    active_experts: int = 1  # experts each token runs through

    @property
    def params(self) -> float:
        return self.in_features * self.out_features * max(self.experts, 1)

    @property
    def active_params(self) -> float:
        return self.in_features * self.out_features * self.active_experts

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bytes_per_param

    def flops(self, tokens: float) -> float:
        return 2.0 * self.active_params * tokens

    def bytes(self, tokens: float) -> float:
        """Weights read (only the experts the batch touches) plus activations in and out."""
        weight = self.in_features * self.out_features * self.weight_bytes_per_param
        if self.experts:
            weight *= expected_experts(self.experts, self.active_experts, tokens)
        io = self.in_features + self.out_features
        return weight + ACTIVATION_BYTES * tokens * self.active_experts * io


ElementwiseKind = Literal["norm", "rope", "activation", "copy", "embedding"]


@dataclass(frozen=True)
class Elementwise:
    """One memory-bound kernel; its kind decides which fitted bandwidth efficiency applies."""

    name: str
    kind: ElementwiseKind
    bytes_per_token: float


@dataclass(frozen=True)
class LayerGroup:
    """`count` identical transformer layers."""

    count: int
    gemms: tuple[Gemm, ...]
    elementwise: tuple[Elementwise, ...]


@dataclass(frozen=True)
class AttentionShape:
    """Attention cost of one layer on one GPU."""

    prefill_flops_per_pair: float  # per (query, key) pair of a prefill chunk
    decode_flops_per_token: float  # per context token a decoding sequence attends to
    kv_bytes_per_token: float  # cache bytes per token, read by decode and written by all


@dataclass(frozen=True)
class ReplicaShape:
    """Everything the roofline needs about one GPU's share of a replica."""

    tp: int
    groups: tuple[LayerGroup, ...]
    attention: AttentionShape
    lm_head: Gemm
    per_iteration: tuple[Elementwise, ...]  # run once per iteration: embedding, final norm
    vocab_size: int
    allreduce_bytes_per_token: float  # one all-reduce of the hidden state
    weight_bytes: float  # stored weights on one GPU
    kv_bytes_per_token: float  # all layers, one GPU

    @property
    def layers(self) -> int:
        return sum(group.count for group in self.groups)


def replica_shape(arch: Architecture, tp: int, kv_dtype: str = "bf16") -> ReplicaShape:
    """The per-GPU shapes of `arch` split over `tp` GPUs by tensor parallelism."""
    if tp < 1 or arch.heads % tp:
        raise InputError(
            f"{arch.name}: gpus_per_replica {tp} must divide its {arch.heads} attention heads"
        )
    h = float(arch.hidden_size)
    w = arch.weight_bytes_per_param
    attention_gemms, attention = _attention(arch, tp, KV_DTYPE_BYTES[kv_dtype])
    rope = _rope_bytes_per_token(arch, tp)

    def elementwise(
        mlp_width: float, extra: tuple[Elementwise, ...] = ()
    ) -> tuple[Elementwise, ...]:
        return (
            Elementwise("input_layernorm", "norm", 2 * ACTIVATION_BYTES * h),
            Elementwise("attn_rope", "rope", rope),
            Elementwise("kv_cache_write", "copy", 2 * attention.kv_bytes_per_token),
            Elementwise("post_attention_layernorm", "norm", 2 * ACTIVATION_BYTES * h),
            Elementwise("mlp_act", "activation", 3 * ACTIVATION_BYTES * mlp_width),
            Elementwise("add", "copy", 3 * ACTIVATION_BYTES * h),
            *extra,
        )

    inter = arch.intermediate_size / tp
    dense = LayerGroup(
        count=arch.moe.dense_layers if arch.moe else arch.layers,
        gemms=(
            *attention_gemms,
            Gemm("mlp_gate_up", h, 2 * inter, w),
            Gemm("mlp_down", inter, h, w),
        ),
        elementwise=elementwise(inter),
    )
    groups = [dense]
    if arch.moe:
        moe = arch.moe
        expert = moe.expert_intermediate_size / tp
        shared = moe.shared_experts * expert
        moe_gemms = [
            *attention_gemms,
            Gemm("moe_router", h, moe.experts, EMBEDDING_BYTES_PER_PARAM),
            Gemm(
                "experts_gate_up",
                h,
                2 * expert,
                moe.expert_bytes_per_param,
                moe.experts,
                moe.active_experts,
            ),
            Gemm(
                "experts_down",
                expert,
                h,
                moe.expert_bytes_per_param,
                moe.experts,
                moe.active_experts,
            ),
        ]
        if shared:
            moe_gemms += [
                Gemm("shared_gate_up", h, 2 * shared, w),
                Gemm("shared_down", shared, h, w),
            ]
        # The combine reads each token's expert outputs and writes their weighted sum.
        combine = Elementwise(
            "moe_combine", "copy", ACTIVATION_BYTES * (moe.active_experts + 1) * h
        )
        active_width = (moe.active_experts * moe.expert_intermediate_size) / tp + shared
        groups.append(
            LayerGroup(
                count=arch.layers - moe.dense_layers,
                gemms=tuple(moe_gemms),
                elementwise=elementwise(active_width, (combine,)),
            )
        )

    vocab_shard = arch.vocab_size / tp
    embedding_bytes = vocab_shard * h * EMBEDDING_BYTES_PER_PARAM
    lm_head = Gemm("lm_head", h, vocab_shard, EMBEDDING_BYTES_PER_PARAM)
    weight_bytes = sum(group.count * sum(g.weight_bytes for g in group.gemms) for group in groups)
    weight_bytes += (
        embedding_bytes if arch.tied_embeddings else embedding_bytes + lm_head.weight_bytes
    )
    return ReplicaShape(
        tp=tp,
        groups=tuple(group for group in groups if group.count),
        attention=attention,
        lm_head=lm_head,
        per_iteration=(
            Elementwise("embedding", "embedding", 2 * ACTIVATION_BYTES * h),
            Elementwise("final_layernorm", "norm", 2 * ACTIVATION_BYTES * h),
        ),
        vocab_size=arch.vocab_size,
        allreduce_bytes_per_token=ACTIVATION_BYTES * h,
        weight_bytes=weight_bytes,
        kv_bytes_per_token=arch.layers * attention.kv_bytes_per_token,
    )


def _kv_heads_per_gpu(arch: Architecture, tp: int) -> float:
    """KV heads are split across GPUs until each holds one; beyond that they are replicated."""
    return arch.kv_heads / min(tp, arch.kv_heads)


def _attention(
    arch: Architecture, tp: int, kv_element_bytes: float
) -> tuple[tuple[Gemm, ...], AttentionShape]:
    h = float(arch.hidden_size)
    w = arch.weight_bytes_per_param
    heads = arch.heads / tp
    if arch.mla is None:
        d = arch.head_dim
        kv_heads = _kv_heads_per_gpu(arch, tp)
        gemms: tuple[Gemm, ...] = (
            Gemm("attn_qkv", h, (heads + 2 * kv_heads) * d, w),
            Gemm("attn_out", heads * d, h, w),
        )
        flops = 2.0 * heads * 2 * d  # QK^T and PV, per (query, key) pair
        return gemms, AttentionShape(flops, flops, 2 * kv_heads * d * kv_element_bytes)
    mla = arch.mla
    qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    latent = mla.kv_lora_rank + mla.qk_rope_head_dim
    gemms = (
        # q_a and kv_a run as one replicated kernel (the latent is shared by all heads).
        Gemm("attn_qkv_a", h, mla.q_lora_rank + latent, w),
        Gemm("attn_q_b", mla.q_lora_rank, heads * qk, w),
        Gemm("attn_kv_b", mla.kv_lora_rank, heads * (mla.qk_nope_head_dim + mla.v_head_dim), w),
        Gemm("attn_out", heads * mla.v_head_dim, h, w),
    )
    # Prefill expands the latent into per-head keys and values; decode attends in latent space
    # (the up-projections absorbed into the query and output), so its pairs are wider.
    prefill = 2.0 * heads * (qk + mla.v_head_dim)
    decode = 2.0 * heads * (latent + mla.kv_lora_rank)
    return gemms, AttentionShape(prefill, decode, latent * kv_element_bytes)


def _rope_bytes_per_token(arch: Architecture, tp: int) -> float:
    """Rotary embedding rewrites the rotated part of every query and key head in place."""
    heads = arch.heads / tp
    if arch.mla is None:
        width = (heads + _kv_heads_per_gpu(arch, tp)) * arch.head_dim
    else:
        width = (heads + 1) * arch.mla.qk_rope_head_dim
    return 2 * ACTIVATION_BYTES * width


def param_counts(arch: Architecture) -> tuple[float, float]:
    """(total, active per token) recounted from the shapes; active counts the LM head but not
    the embedding lookup, which does no arithmetic."""
    shape = replica_shape(arch, 1)
    total = sum(group.count * sum(g.params for g in group.gemms) for group in shape.groups)
    active = sum(group.count * sum(g.active_params for g in group.gemms) for group in shape.groups)
    embedding = arch.vocab_size * arch.hidden_size
    lm_head = 0 if arch.tied_embeddings else embedding
    return total + embedding + lm_head, active + embedding
