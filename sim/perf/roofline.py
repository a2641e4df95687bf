"""Iteration time of a continuous-batching replica from a per-kernel roofline.

Every kernel of every layer is priced by `Calibration` (compute- or bandwidth-bound, plus a
fixed cost); tensor parallelism adds two all-reduces per layer. Only attention depends on the
context, and only linearly for decodes, so a decode-only step is one line in the summed
context and the replica can sum runs of steps in closed form (docs/performance-model.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.errors import InputError
from sim.perf.base import DecodeLines
from sim.perf.calibration import Calibration, get_calibration
from sim.perf.catalog import Architecture, Gpu, get_architecture, get_gpu
from sim.perf.config import RooflinePerf
from sim.perf.shapes import ACTIVATION_BYTES, SAMPLING_BYTES_PER_LOGIT, replica_shape


def expected_tokens_per_step(draft_tokens: int, acceptance_rate: float) -> float:
    """Tokens a speculative step emits when each draft is accepted independently with the
    given rate and the first rejection ends the step (Leviathan et al., 2023)."""
    if draft_tokens == 0:
        return 1.0
    return (1.0 - acceptance_rate ** (draft_tokens + 1)) / (1.0 - acceptance_rate)


class RooflineModel:
    """BatchTimeModel of one replica: `arch` on `gpus_per_replica` GPUs of type `gpu`."""

    def __init__(
        self,
        arch: Architecture,
        gpu: Gpu,
        gpus_per_replica: int,
        cfg: RooflinePerf | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.arch = arch
        self.gpu = gpu
        self.tp = gpus_per_replica
        self.cfg = cfg or RooflinePerf.model_validate({})
        self.shape = replica_shape(arch, gpus_per_replica, self.cfg.kv_dtype)
        overrides = {
            "gemm_compute_efficiency": self.cfg.compute_efficiency,
            "gemm_memory_efficiency": self.cfg.memory_efficiency,
            "attention_decode_memory_efficiency": self.cfg.memory_efficiency,
            "iteration_overhead_s": self.cfg.overhead_s,
        }
        base = calibration or get_calibration(gpu.name)
        self.calibration = base.model_copy(
            update={key: value for key, value in overrides.items() if value is not None}
        )
        cal = self.calibration
        attention = self.shape.attention
        self._layers = self.shape.layers
        self._overhead_s = cal.iteration_overhead_s
        self._attention_fixed_s = self._layers * cal.attention_decode_kernel_s
        self._attention_seq_s = self._layers * cal.attention_seq_s
        self._decode_s_per_token = self._layers * cal.decode_attention_s_per_token(
            gpu, attention.decode_flops_per_token, attention.kv_bytes_per_token
        )
        # Prefill attention of all layers, the calibration's formula with constants folded
        # (iteration_time_s runs once per simulated iteration).
        compute_per_s = gpu.dense_bf16_flops_per_s * cal.attention_compute_efficiency
        self._prefill_kernel_s = self._layers * cal.attention_prefill_kernel_s
        self._prefill_s_per_pair = self._layers * attention.prefill_flops_per_pair / compute_per_s
        self._prefill_s_per_kv_token = (
            self._layers
            * attention.kv_bytes_per_token
            / (gpu.hbm_bytes_per_s * cal.gemm_memory_efficiency)
        )
        self._prefill_serial_s_per_token = self._layers * cal.attention_serial_s_per_token
        self.tokens_per_step = expected_tokens_per_step(
            self.cfg.draft_tokens, self.cfg.acceptance_rate
        )
        self._lines: dict[int, DecodeLines] = {}
        self._token_s: dict[int, float] = {}
        self._sample_s: dict[int, float] = {}

    # ------------------------------------------------------------------ parts of an iteration
    def token_time_s(self, tokens: int) -> float:
        """Linear layers, elementwise kernels and all-reduces for `tokens` tokens in the batch."""
        cached = self._token_s.get(tokens)
        if cached is not None:
            return cached
        time_s = 0.0
        if tokens > 0:
            cal, gpu, dtype = self.calibration, self.gpu, self.arch.compute_dtype
            allreduce_s = cal.allreduce_time_s(
                gpu, tokens * self.shape.allreduce_bytes_per_token, self.tp
            )
            for group in self.shape.groups:
                layer_s = 2 * allreduce_s
                layer_s += sum(cal.gemm_time_s(gpu, dtype, g, tokens) for g in group.gemms)
                layer_s += sum(
                    cal.elementwise_time_s(gpu, e.kind, tokens * e.bytes_per_token)
                    for e in group.elementwise
                )
                time_s += group.count * layer_s
            time_s += sum(
                cal.elementwise_time_s(gpu, e.kind, tokens * e.bytes_per_token)
                for e in self.shape.per_iteration
            )
        self._token_s[tokens] = time_s
        return time_s

    def sample_time_s(self, sampled: int) -> float:
        """LM head, logits gathered across GPUs, and sampling for `sampled` tokens."""
        cached = self._sample_s.get(sampled)
        if cached is not None:
            return cached
        time_s = 0.0
        if sampled > 0:
            cal, gpu, vocab = self.calibration, self.gpu, self.shape.vocab_size
            time_s = cal.gemm_time_s(gpu, "bf16", self.shape.lm_head, sampled)
            time_s += cal.allgather_time_s(gpu, sampled * vocab * ACTIVATION_BYTES, self.tp)
            time_s += cal.elementwise_time_s(
                gpu, "norm", sampled * vocab * SAMPLING_BYTES_PER_LOGIT
            )
        self._sample_s[sampled] = time_s
        return time_s

    def _plain_decode_line(self, seqs: int, tokens_per_seq: int) -> tuple[float, float]:
        """One forward pass over `seqs` sequences of `tokens_per_seq` new tokens each."""
        tokens = seqs * tokens_per_seq
        a = self._overhead_s + self.token_time_s(tokens) + self.sample_time_s(tokens)
        if seqs == 0:
            return a, 0.0
        a += self._attention_fixed_s + self._attention_seq_s * seqs
        if tokens_per_seq == 1:
            return a, self._decode_s_per_token
        attention = self.shape.attention
        b = self._layers * self.calibration.decode_attention_s_per_token(
            self.gpu,
            tokens_per_seq * attention.decode_flops_per_token,
            attention.kv_bytes_per_token,
        )
        return a, b

    # ------------------------------------------------------------------ BatchTimeModel
    def decode_lines(self, decode_seqs: int) -> DecodeLines:
        """Memoized: (a, b) with step time a + b * summed context.

        With speculative decoding a step verifies draft_tokens + 1 tokens per sequence after
        drafting them; the line is that time divided by the expected tokens emitted, so the
        replica, which advances one token per step, sees the mean time per token.
        """
        lines = self._lines.get(decode_seqs)
        if lines is None:
            draft = self.cfg.draft_tokens
            if draft == 0 or decode_seqs == 0:
                lines = (self._plain_decode_line(decode_seqs, 1),)
            else:
                a0, b0 = self._plain_decode_line(decode_seqs, 1)
                a, b = self._plain_decode_line(decode_seqs, draft + 1)
                drafting = draft * self.cfg.draft_cost_ratio
                per_token = 1.0 / self.tokens_per_step
                lines = (((a + drafting * a0) * per_token, (b + drafting * b0) * per_token),)
            self._lines[decode_seqs] = lines
        return lines

    def iteration_time_s(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        """Decodes take one token each (no speculation in iterations that also prefill)."""
        if not prefill_chunks:
            a, b = self.decode_lines(decode_seqs)[0]
            return a + b * decode_context_tokens
        tokens = decode_seqs
        pairs = 0.0
        kv_tokens = 0
        longest = 0
        for chunk_tokens, context_before in prefill_chunks:
            tokens += chunk_tokens
            pairs += chunk_tokens * (context_before + (chunk_tokens + 1) * 0.5)
            end = context_before + chunk_tokens
            kv_tokens += end
            if end > longest:
                longest = end
        token_s = self._token_s.get(tokens)  # memoized parts, looked up inline (hot path)
        if token_s is None:
            token_s = self.token_time_s(tokens)
        sampled = decode_seqs + len(prefill_chunks)
        sample_s = self._sample_s.get(sampled)
        if sample_s is None:
            sample_s = self.sample_time_s(sampled)
        time_s = self._overhead_s + token_s + sample_s
        time_s += self._prefill_kernel_s + max(
            pairs * self._prefill_s_per_pair,
            kv_tokens * self._prefill_s_per_kv_token,
            longest * self._prefill_serial_s_per_token,
        )
        if decode_seqs:
            time_s += self._attention_fixed_s + self._attention_seq_s * decode_seqs
            time_s += self._decode_s_per_token * decode_context_tokens
        return time_s

    # ------------------------------------------------------------------ memory
    def kv_capacity_tokens(
        self, memory_utilization: float = 0.9, activation_reserve_gb: float | None = None
    ) -> int:
        """KV-cache tokens a replica holds: each GPU's usable memory less its weight shard and
        activation reserve, divided by its share of one token's cache."""
        reserve_gb = (
            self.cfg.activation_reserve_gb
            if activation_reserve_gb is None
            else activation_reserve_gb
        )
        usable = self.gpu.hbm_bytes * memory_utilization
        free = usable - self.shape.weight_bytes - reserve_gb * 1e9
        if free < self.shape.kv_bytes_per_token:
            raise InputError(
                f"{self.arch.name} does not fit on {self.tp} x {self.gpu.name}: "
                f"{self.shape.weight_bytes / 1e9:.1f} GB of weights per GPU against "
                f"{usable / 1e9:.1f} GB usable at memory_utilization {memory_utilization}"
            )
        return int(free // self.shape.kv_bytes_per_token)


def build_batch_time_model(
    architecture_name: str,
    gpu_name: str,
    gpus_per_replica: int,
    cfg: RooflinePerf | None = None,
) -> RooflineModel:
    """The roofline model of a catalog architecture on catalog GPUs."""
    return RooflineModel(
        get_architecture(architecture_name), get_gpu(gpu_name), gpus_per_replica, cfg
    )
