"""The roofline model's behaviour: monotone, never faster than peak, consistent decode lines."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim.errors import InputError
from sim.perf.calibration import get_calibration
from sim.perf.catalog import get_architecture, get_gpu
from sim.perf.config import RooflinePerf
from sim.perf.roofline import RooflineModel, build_batch_time_model, expected_tokens_per_step
from sim.perf.shapes import expected_experts
from sim.replica.stretch import step_time_s, stretch_time_s

CASES = [
    ("llama-2-7b", "h100", 1),
    ("llama-3.1-8b", "a100", 1),
    ("llama-3.1-70b", "h100", 4),
    ("qwen2.5-32b", "h200", 2),
    ("deepseek-v3", "h200", 8),
    ("gpt-oss-120b", "b200", 1),
]


@pytest.fixture(params=CASES, ids=["-".join(map(str, case)) for case in CASES])
def model(request: pytest.FixtureRequest) -> RooflineModel:
    return build_batch_time_model(*request.param)


def test_monotone_in_batch_and_context(model: RooflineModel) -> None:
    for context in (100, 2_000, 30_000):
        times = [model.iteration_time_s(n, n * context, []) for n in (1, 2, 8, 64, 256, 1024)]
        assert times == sorted(times)
    for batch in (1, 32):
        times = [model.iteration_time_s(batch, c, []) for c in (batch, 10_000, 1_000_000)]
        assert times[0] < times[1] < times[2]


def test_monotone_in_prefill_tokens_and_context(model: RooflineModel) -> None:
    chunks = [model.iteration_time_s(0, 0, [(c, 0)]) for c in (1, 16, 128, 512, 2048, 8192)]
    assert chunks == sorted(chunks)
    before = [model.iteration_time_s(0, 0, [(512, p)]) for p in (0, 1_000, 10_000, 100_000)]
    assert before == sorted(before)
    assert model.iteration_time_s(8, 8_000, [(512, 0)]) > model.iteration_time_s(8, 8_000, [])
    more = model.iteration_time_s(8, 8_000, [(512, 0), (256, 4_000)])
    assert more > model.iteration_time_s(8, 8_000, [(512, 0)])


@pytest.mark.parametrize(
    ("decodes", "context", "chunks"), [(0, 0, [(4096, 0)]), (256, 500_000, [])]
)
def test_never_faster_than_peak_flops_or_bandwidth(
    model: RooflineModel, decodes: int, context: int, chunks: list[tuple[int, int]]
) -> None:
    """Lower bounds from the published counts, independent of the model's own shapes."""
    arch, gpu, tp = model.arch, model.gpu, model.tp
    tokens = decodes + sum(c for c, _ in chunks)
    head = 2 * arch.vocab_size * arch.hidden_size  # embedding + LM head, not run per token
    flops = 2 * (arch.params_active - head) * tokens
    bpp = min(arch.weight_bytes_per_param, arch.moe.expert_bytes_per_param if arch.moe else 9.0)
    kv_bytes = context * model.shape.kv_bytes_per_token * tp
    weights = (arch.params_active - head) * bpp
    time_s = model.iteration_time_s(decodes, context, chunks)
    assert time_s >= flops / (tp * gpu.flops_per_s(arch.compute_dtype))
    assert time_s >= (weights + kv_bytes) / (tp * gpu.hbm_bytes_per_s)


def test_decode_lines_match_iteration_time_bit_for_bit(model: RooflineModel) -> None:
    rng = random.Random(7)
    for _ in range(200):
        seqs = rng.randint(1, 512)
        context = rng.randint(seqs, seqs * 8_000)
        lines = model.decode_lines(seqs)
        assert model.iteration_time_s(seqs, context, []) == step_time_s(lines, context)
        assert max(a + b * context for a, b in lines) == model.iteration_time_s(seqs, context, [])
    assert model.decode_lines(17) is model.decode_lines(17)


def test_stretch_of_decode_steps_sums_the_steps(model: RooflineModel) -> None:
    seqs, context, steps = 24, 24 * 1_500, 50
    lines = model.decode_lines(seqs)
    one_by_one = sum(model.iteration_time_s(seqs, context + seqs * i, []) for i in range(steps))
    assert stretch_time_s(lines, context, seqs, steps) == pytest.approx(one_by_one, rel=1e-12)


def test_llama_70b_tp8_is_faster_per_token_than_tp4() -> None:
    tp4 = build_batch_time_model("llama-3.1-70b", "h100", 4)
    tp8 = build_batch_time_model("llama-3.1-70b", "h100", 8)
    for batch in (1, 16, 128):
        step4 = tp4.iteration_time_s(batch, batch * 2_000, [])
        assert tp8.iteration_time_s(batch, batch * 2_000, []) < step4
    assert tp8.iteration_time_s(0, 0, [(2048, 0)]) < tp4.iteration_time_s(0, 0, [(2048, 0)])


def test_sanity_anchor_llama_2_7b_on_h100() -> None:
    """Batch 8 at ~1,800 tokens each reads 13.5 GB of weights and 7.5 GB of KV cache: at least
    6.3 ms at peak bandwidth; the 512-token prefill is about 7 TFLOP of linear layers."""
    model = build_batch_time_model("llama-2-7b", "h100", 1)
    assert 6.3e-3 < model.iteration_time_s(8, 8 * 1_800, []) < 11e-3
    assert 10e-3 < model.iteration_time_s(0, 0, [(512, 0)]) < 40e-3


def test_kv_capacity_llama_8b_on_one_h100() -> None:
    model = build_batch_time_model("llama-3.1-8b", "h100", 1)
    expected = (0.9 * 80e9 - 16.06e9) / 131_072
    assert model.kv_capacity_tokens(0.9) == pytest.approx(expected, rel=0.005)
    assert 420_000 < model.kv_capacity_tokens(0.9) < 440_000
    assert model.kv_capacity_tokens(0.9, activation_reserve_gb=4.0) == pytest.approx(
        expected - 4e9 / 131_072, rel=0.005
    )
    fp8 = build_batch_time_model("llama-3.1-8b", "h100", 1, RooflinePerf(kv_dtype="fp8"))
    assert fp8.kv_capacity_tokens(0.9) == pytest.approx(2 * expected, rel=0.005)


def test_kv_capacity_grows_with_gpus_and_rejects_models_that_do_not_fit() -> None:
    tp4 = build_batch_time_model("llama-3.1-70b", "h100", 4).kv_capacity_tokens()
    tp8 = build_batch_time_model("llama-3.1-70b", "h100", 8).kv_capacity_tokens()
    assert 0 < tp4 < tp8
    with pytest.raises(InputError, match="does not fit"):
        build_batch_time_model("deepseek-v3", "h100", 8).kv_capacity_tokens()


def test_overrides_replace_the_fitted_values() -> None:
    fitted = build_batch_time_model("llama-3.1-8b", "h100", 1)
    slow = build_batch_time_model("llama-3.1-8b", "h100", 1, RooflinePerf(compute_efficiency=0.2))
    assert slow.iteration_time_s(0, 0, [(4096, 0)]) > 2 * fitted.iteration_time_s(0, 0, [(4096, 0)])
    narrow = build_batch_time_model("llama-3.1-8b", "h100", 1, RooflinePerf(memory_efficiency=0.3))
    assert narrow.iteration_time_s(1, 100, []) > 2 * fitted.iteration_time_s(1, 100, [])
    cfg = RooflinePerf(overhead_s=0.01)
    busy = build_batch_time_model("llama-3.1-8b", "h100", 1, cfg)
    extra = 0.01 - fitted.calibration.iteration_overhead_s
    assert busy.iteration_time_s(4, 4_000, []) == pytest.approx(
        fitted.iteration_time_s(4, 4_000, []) + extra
    )


def test_speculative_decoding() -> None:
    assert expected_tokens_per_step(0, 0.7) == 1.0
    assert expected_tokens_per_step(3, 0.7) == pytest.approx(1 + 0.7 + 0.49 + 0.343)
    plain = build_batch_time_model("llama-3.1-70b", "h100", 8)
    spec = build_batch_time_model("llama-3.1-70b", "h100", 8, RooflinePerf(draft_tokens=3))
    useless = build_batch_time_model(
        "llama-3.1-70b", "h100", 8, RooflinePerf(draft_tokens=3, acceptance_rate=0.0)
    )
    # Small batches are bandwidth-bound: verifying 4 tokens costs about as much as 1.
    assert spec.iteration_time_s(1, 2_000, []) < 0.6 * plain.iteration_time_s(1, 2_000, [])
    assert useless.iteration_time_s(1, 2_000, []) > plain.iteration_time_s(1, 2_000, [])
    # Iterations that also prefill price their decodes without speculation.
    mixed = [(512, 0)]
    assert spec.iteration_time_s(8, 8_000, mixed) == plain.iteration_time_s(8, 8_000, mixed)


@pytest.mark.parametrize("acceptance_rate", [0.0, 0.3, 0.6, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("draft_tokens", [1, 2, 4, 8])
def test_expected_tokens_per_step_is_the_closed_form(
    draft_tokens: int, acceptance_rate: float
) -> None:
    """A step emits the drafts accepted before the first rejection plus one token of the
    target model's own: P(n tokens) = a^(n-1) (1 - a) for n <= k, a^k for k + 1, whose mean is
    (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, "Fast inference from transformers via
    speculative decoding", eq. 1). Checked against that sum and a seeded simulation of it."""
    k, a = draft_tokens, acceptance_rate
    closed_form = (1 - a ** (k + 1)) / (1 - a)
    by_law = sum(n * a ** (n - 1) * (1 - a) for n in range(1, k + 1)) + (k + 1) * a**k
    assert expected_tokens_per_step(k, a) == pytest.approx(closed_form, rel=1e-12)
    assert by_law == pytest.approx(closed_form, rel=1e-12)
    rng = np.random.default_rng(2023)
    accepted = rng.random((100_000, k)) < a
    emitted = np.where(accepted.all(axis=1), k, np.argmin(accepted, axis=1)) + 1
    standard_error = emitted.std() / np.sqrt(emitted.size)
    assert abs(emitted.mean() - closed_form) <= 4 * standard_error + 1e-12


def _weights_and_kv_bound_s(model: RooflineModel, context: int) -> float:
    """The least time a step can take: its weights (active, excluding embeddings) and its
    KV cache read once at peak HBM bandwidth."""
    arch, gpu, tp = model.arch, model.gpu, model.tp
    head = 2 * arch.vocab_size * arch.hidden_size
    bpp = min(arch.weight_bytes_per_param, arch.moe.expert_bytes_per_param if arch.moe else 9.0)
    weights = (arch.params_active - head) * bpp
    return (weights + context * model.shape.kv_bytes_per_token * tp) / (tp * gpu.hbm_bytes_per_s)


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, case)) for case in CASES])
@pytest.mark.parametrize("decodes", [1, 16, 256])
def test_speculative_steps_never_beat_the_roofline(
    case: tuple[str, str, int], decodes: int
) -> None:
    """With speculation the model prices time per emitted token; a whole verify step (that
    time x the expected tokens per step) still reads every weight and the KV cache once."""
    spec = build_batch_time_model(*case, RooflinePerf(draft_tokens=4, acceptance_rate=0.8))
    context = decodes * 2_000
    step_s = spec.iteration_time_s(decodes, context, []) * expected_tokens_per_step(4, 0.8)
    assert step_s >= _weights_and_kv_bound_s(spec, context)


def test_expected_experts() -> None:
    assert expected_experts(256, 8, 1) == pytest.approx(8.0)
    assert expected_experts(256, 8, 0) == 0.0
    touched = [expected_experts(256, 8, t) for t in (1, 2, 8, 64, 512, 4096)]
    assert touched == sorted(touched) and touched[-1] == pytest.approx(256, rel=1e-6)
    # Two tokens: 8 + 8 x (248/256) expected distinct experts, by counting.
    assert expected_experts(256, 8, 2) == pytest.approx(8 + 8 * 248 / 256)


def test_moe_reads_only_the_experts_a_batch_touches() -> None:
    """Routed-expert kernels read the experts a batch touches: about k of E for one token,
    nearly all for a large batch; the weight reads show in the decode step's time."""
    model = build_batch_time_model("deepseek-v3", "h200", 8)
    experts = [g for group in model.shape.groups for g in group.gemms if g.experts]
    assert experts
    for gemm in experts:
        one_expert = gemm.in_features * gemm.out_features * gemm.weight_bytes_per_param
        assert gemm.bytes(1) == pytest.approx(gemm.active_experts * one_expert, rel=0.01)
        assert gemm.bytes(4096) >= 0.99 * gemm.weight_bytes
    # Going from 1 to 64 sequences touches about 39x more experts per layer: the step grows.
    assert model.iteration_time_s(64, 64_000, []) > 1.5 * model.iteration_time_s(1, 1_000, [])


# Batch-1 decode of Llama-3.1-8B (BF16) measured with vLLM (docs/performance-model.md,
# "Iteration overhead and decode attention"): about 75 tok/s on an A100 40GB, 77% of its
# weight-read ceiling; the same share of an H100's ceiling is 161 tok/s.
BATCH1_MEASURED_TOK_S = {"a100-40gb": 75.0, "h100": 0.77 * 3.35e12 / 16.06e9}


@pytest.mark.parametrize("gpu", sorted(BATCH1_MEASURED_TOK_S))
def test_batch1_decode_of_an_8b_model_is_within_10_percent_of_the_measured(gpu: str) -> None:
    arch = get_architecture("llama-3.1-8b")
    if gpu == "a100-40gb":  # the catalog's A100 is the 80GB part: same chip, 1.555 TB/s
        part = get_gpu("a100").model_copy(update={"hbm_bytes_per_s": 1.555e12, "hbm_bytes": 40e9})
        model = RooflineModel(arch, part, 1, calibration=get_calibration("a100"))
    else:
        model = build_batch_time_model("llama-3.1-8b", gpu, 1)
    # 1,024 prompt tokens and 128 generated, as measured: the context over the answer.
    tokens_per_s = [1 / model.iteration_time_s(1, context, []) for context in (1024, 1152)]
    for rate in tokens_per_s:
        assert rate == pytest.approx(BATCH1_MEASURED_TOK_S[gpu], rel=0.10)
