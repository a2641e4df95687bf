"""Fit the per-GPU calibration to measured kernel times and write sim/perf/data/calibration.json.

    python -m sim.perf.fit --data ../shared/data [--check]

Each measured row (one op at one size on one GPU) is priced by the same `Calibration` methods
and shapes the roofline model uses; scipy's least squares fits, per GPU and op family, the
factors that minimise the squared log of predicted over measured time. Families, data:

- gemm (compute and memory efficiency, kernel time): Vidur mlp.csv projections (A100, H100,
  TP 1-8) and LLMServingSim layers.csv projections and LM head (H100, TP 1);
- elementwise (memory efficiency per kind, kernel time): Vidur mlp.csv norms, rotary,
  activation, add, embedding;
- attention_prefill (compute efficiency, kernel time, per-context-token floor): LLMServingSim
  attention.csv prefill rows (H100, Llama-3.1-70B TP 4) and layers.csv attn rows;
- attention_decode (kernel time, time per sequence): attention.csv decode rows;
- all-reduce (latency, bandwidth efficiency): Vidur all_reduce.csv, one NVSwitch node.

Rows kept out of a fit are still reported, marked `held out`, with the reason in the docs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from sim.perf.calibration import CALIBRATION_FILE, Calibration
from sim.perf.catalog import Gpu, get_architecture, get_gpu, gpu_names
from sim.perf.shapes import AttentionShape, Elementwise, Gemm, replica_shape

MS = 1e-3
NS = 1e-9
REFERENCE_GPU = "h100"  # GPUs without measurements copy its calibration
# Neither is in a kernel profile that represents a serving engine, so both are set from
# public measurements of whole steps (docs/performance-model.md, "Iteration overhead and decode
# attention"). Host time per iteration that the GPU does not hide: none. Batch-1 decode of
# Llama-3.1-8B measured with vLLM is already faster than the kernels alone predict (a negative
# overhead fits), as engines that overlap scheduling with the GPU step make it.
ITERATION_OVERHEAD_S = 0.0
# Share of HBM bandwidth that paged decode attention reaches reading the KV cache: Vidur's H100
# profiles of vLLM's PagedAttention, seen through its reference workload (TPOT p50 within 3%).
# The LLMServingSim decode profile would fit 0.12: a kernel without split-KV, held out above.
DECODE_ATTENTION_MEMORY_EFFICIENCY = 0.65
# Decode attention rows whose sequences are at most this long are fitted; longer ones are held
# out because the profiled kernel ran without split-KV (docs, "Where the model is weak").
DECODE_FIT_MAX_CONTEXT_TOKENS = 512
VIDUR_MODELS = {"Llama-2-7b-hf": "llama-2-7b", "Meta-Llama-3-8B": "llama-3.1-8b"}


@dataclass(frozen=True)
class Row:
    """One measured kernel time and how the calibration predicts it."""

    family: str
    op: str
    gpu: str
    source: str
    size: float  # tokens (compute ops), context tokens (attention) or bytes (all-reduce)
    measured_s: float
    predict: Callable[[Calibration], float]
    fitted: bool = True


@dataclass(frozen=True)
class Family:
    """Calibration fields fitted together, from a starting point within bounds."""

    name: str
    fields: tuple[str, ...]
    start: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


FAMILIES = (
    Family(
        "gemm",
        ("gemm_compute_efficiency", "gemm_memory_efficiency", "gemm_kernel_s"),
        (0.7, 0.8, 3e-6),
        (0.05, 0.05, 0.0),
        (1.0, 1.0, 1e-4),
    ),
    Family(
        "elementwise",
        (
            "elementwise_norm_efficiency",
            "elementwise_rope_efficiency",
            "elementwise_activation_efficiency",
            "elementwise_copy_efficiency",
            "elementwise_embedding_efficiency",
            "elementwise_kernel_s",
        ),
        (0.5, 0.5, 0.5, 0.5, 0.5, 3e-6),
        (0.02, 0.02, 0.02, 0.02, 0.02, 0.0),
        (1.0, 1.0, 1.0, 1.0, 1.0, 1e-4),
    ),
    Family(
        "attention_prefill",
        (
            "attention_compute_efficiency",
            "attention_prefill_kernel_s",
            "attention_serial_s_per_token",
        ),
        (0.3, 4e-6, 2e-8),
        (0.02, 0.0, 0.0),
        (1.0, 1e-4, 1e-6),
    ),
    Family(
        "attention_decode",
        ("attention_decode_kernel_s", "attention_seq_s"),
        (4e-6, 3e-7),
        (0.0, 0.0),
        (1e-4, 1e-5),
    ),
    Family(
        "all_reduce",
        ("allreduce_latency_s", "allreduce_bandwidth_efficiency"),
        (1e-5, 0.6),
        (0.0, 0.02),
        (1e-3, 1.0),
    ),
)


def _read(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="") as file:
        yield from csv.DictReader(file)


# --------------------------------------------------------------------------------- datasets
VIDUR_GEMMS = {
    "attn_pre_proj": "attn_qkv",
    "attn_post_proj": "attn_out",
    "mlp_up_proj": "mlp_gate_up",
    "mlp_down_proj": "mlp_down",
}
VIDUR_ELEMENTWISE = {
    "input_layernorm": "input_layernorm",
    "post_attention_layernorm": "post_attention_layernorm",
    "attn_rope": "attn_rope",
    "mlp_act": "mlp_act",
    "add": "add",
    "emb": "embedding",
}


def vidur_compute_rows(data: Path) -> Iterator[Row]:
    """Vidur mlp.csv: one layer's ops, times in ms, weights sharded over the TP workers."""
    for path in sorted((data / "vidur-profiling" / "compute").glob("*/meta-llama/*/mlp.csv")):
        gpu = get_gpu(path.parts[-4])
        arch = get_architecture(VIDUR_MODELS[path.parts[-2]])
        source = f"vidur {path.parts[-2]}"
        for record in _read(path):
            tokens = int(record["num_tokens"])
            shape = replica_shape(arch, int(record["num_tensor_parallel_workers"]))
            gemms = {g.name: g for g in shape.groups[0].gemms}
            elementwise = {e.name: e for e in shape.groups[0].elementwise + shape.per_iteration}
            for op, name in VIDUR_GEMMS.items():
                yield Row(
                    "gemm",
                    op,
                    gpu.name,
                    source,
                    tokens,
                    float(record[f"time_stats.{op}.median"]) * MS,
                    _gemm_predictor(gpu, gemms[name], tokens),
                )
            for op, name in VIDUR_ELEMENTWISE.items():
                yield Row(
                    "elementwise",
                    op,
                    gpu.name,
                    source,
                    tokens,
                    float(record[f"time_stats.{op}.median"]) * MS,
                    _elementwise_predictor(gpu, elementwise[name], tokens),
                )


def llmservingsim_layer_rows(data: Path) -> Iterator[Row]:
    """LLMServingSim layers.csv (H100, Llama-3.1-8B, TP 1): unfused Hugging Face modules, ns."""
    path = data / "llmservingsim-profiling/H100/meta-llama/Llama-3.1-8B/tp1/layers.csv"
    arch = get_architecture("llama-3.1-8b")
    gpu = get_gpu("h100")
    shape = replica_shape(arch, 1)
    h, d, inter = arch.hidden_size, arch.head_dim, arch.intermediate_size
    gemms = {
        "q_proj": Gemm("q_proj", h, arch.heads * d, 2.0),
        "k_proj": Gemm("k_proj", h, arch.kv_heads * d, 2.0),
        "v_proj": Gemm("v_proj", h, arch.kv_heads * d, 2.0),
        "o_proj": Gemm("o_proj", arch.heads * d, h, 2.0),
        "gate_proj": Gemm("gate_proj", h, inter, 2.0),
        "up_proj": Gemm("up_proj", h, inter, 2.0),
        "down_proj": Gemm("down_proj", inter, h, 2.0),
        "lm_head": shape.lm_head,
    }
    elementwise = {e.name: e for e in shape.groups[0].elementwise + shape.per_iteration}
    unfused = {
        "embedding": "embedding",
        "input_layernorm": "input_layernorm",
        "post_layernorm": "post_attention_layernorm",
        "final_layernorm": "final_layernorm",
        "rope": "attn_rope",
        "act_fn": "mlp_act",
    }
    attention = shape.attention
    for record in _read(path):
        op, tokens = record["layer_name"], int(record["input"])
        measured_s = float(record["latency(ns)"]) * NS
        source = "llmservingsim layers"
        if op in gemms:
            yield Row(
                "gemm",
                op,
                gpu.name,
                source,
                tokens,
                measured_s,
                _gemm_predictor(gpu, gemms[op], tokens),
            )
        elif op in unfused:
            predict = _elementwise_predictor(gpu, elementwise[unfused[op]], tokens)
            yield Row(
                "elementwise", op, gpu.name, source, tokens, measured_s, predict, fitted=False
            )
        elif op == "attn":
            pairs = tokens * (tokens + 1) * 0.5
            predict = _prefill_predictor(gpu, pairs, tokens, attention)
            yield Row(
                "attention_prefill", "attn_prefill", gpu.name, source, tokens, measured_s, predict
            )


def llmservingsim_attention_rows(data: Path) -> Iterator[Row]:
    """attention.csv (H100, Llama-3.1-70B, TP 4), ms. kv_cache_size is the context including the
    chunk for prefill and the total over the batch for decode (time falls as batch rises)."""
    path = data / "llmservingsim-profiling/H100/meta-llama/Llama-3.1-70B/tp4/attention.csv"
    gpu = get_gpu("h100")
    attention = replica_shape(get_architecture("llama-3.1-70b"), 4).attention
    source = "llmservingsim attention"
    for record in _read(path):
        context = int(record["kv_cache_size"])
        if record["is_prefill"] == "True":
            chunk = int(record["prefill_chunk_size"])
            pairs = chunk * (context - chunk + (chunk + 1) * 0.5)
            measured_s = float(record["time_stats.attn_prefill.median"]) * MS
            predict = _prefill_predictor(gpu, pairs, context, attention)
            yield Row(
                "attention_prefill", "attn_prefill", gpu.name, source, context, measured_s, predict
            )
        else:
            seqs = int(record["batch_size"])
            measured_s = float(record["time_stats.attn_decode.median"]) * MS
            # Rows with less than one token per sequence are degenerate; long ones ran serially.
            fitted = seqs <= context <= seqs * DECODE_FIT_MAX_CONTEXT_TOKENS
            predict = _decode_predictor(gpu, seqs, context, attention)
            yield Row(
                "attention_decode",
                "attn_decode",
                gpu.name,
                source,
                context,
                measured_s,
                predict,
                fitted,
            )


def vidur_allreduce_rows(data: Path) -> Iterator[Row]:
    """Vidur all_reduce.csv inside one NVSwitch node (DGX); sizes in bytes, times in ms."""
    for gpu_name in ("a100", "h100"):
        gpu = get_gpu(gpu_name)
        path = data / "vidur-profiling" / "network" / f"{gpu_name}_dgx" / "all_reduce.csv"
        for record in _read(path):
            workers = int(record["num_workers"])
            if workers != int(record["devices_per_node"]):
                continue  # spans nodes: not an NVLink all-reduce
            size = float(record["size"])
            measured_s = float(record["time_stats.all_reduce.median"]) * MS
            yield Row(
                "all_reduce",
                f"all_reduce x{workers}",
                gpu_name,
                "vidur network",
                size,
                measured_s,
                _allreduce_predictor(gpu, size, workers),
            )


def _gemm_predictor(gpu: Gpu, gemm: Gemm, tokens: int) -> Callable[[Calibration], float]:
    return lambda cal: cal.gemm_time_s(gpu, "bf16", gemm, tokens)


def _elementwise_predictor(
    gpu: Gpu, op: Elementwise, tokens: int
) -> Callable[[Calibration], float]:
    return lambda cal: cal.elementwise_time_s(gpu, op.kind, tokens * op.bytes_per_token)


def _prefill_predictor(
    gpu: Gpu, pairs: float, context: int, attention: AttentionShape
) -> Callable[[Calibration], float]:
    flops = pairs * attention.prefill_flops_per_pair
    kv_bytes = context * attention.kv_bytes_per_token
    return lambda cal: cal.prefill_attention_time_s(gpu, flops, kv_bytes, context)


def _decode_predictor(
    gpu: Gpu, seqs: int, context: int, attention: AttentionShape
) -> Callable[[Calibration], float]:
    return lambda cal: cal.decode_attention_time_s(
        gpu, seqs, context, attention.decode_flops_per_token, attention.kv_bytes_per_token
    )


def _allreduce_predictor(gpu: Gpu, size: float, workers: int) -> Callable[[Calibration], float]:
    return lambda cal: cal.allreduce_time_s(gpu, size, workers)


def load_rows(data: Path) -> list[Row]:
    return [
        *vidur_compute_rows(data),
        *llmservingsim_layer_rows(data),
        *llmservingsim_attention_rows(data),
        *vidur_allreduce_rows(data),
    ]


# --------------------------------------------------------------------------------- fitting
def start_calibration(gpu: Gpu) -> Calibration:
    values: dict[str, float | str] = {"measured_on": gpu.name}
    for family in FAMILIES:
        values.update(zip(family.fields, family.start, strict=True))
    values["allreduce_latency_s"] = gpu.interconnect_latency_s
    values["iteration_overhead_s"] = ITERATION_OVERHEAD_S
    values["attention_decode_memory_efficiency"] = DECODE_ATTENTION_MEMORY_EFFICIENCY
    return Calibration.model_validate(values)


def fit_family(base: Calibration, family: Family, rows: list[Row]) -> Calibration:
    """Least squares on log(predicted / measured) over the rows of one family, each source
    weighted equally whatever its number of rows."""
    measured = np.array([row.measured_s for row in rows])
    per_source = Counter(row.source for row in rows)
    weights = np.sqrt([1.0 / per_source[row.source] for row in rows])

    def residuals(x: np.ndarray) -> np.ndarray:
        cal = base.model_copy(update=dict(zip(family.fields, map(float, x), strict=True)))
        return weights * (np.log([row.predict(cal) for row in rows]) - np.log(measured))

    start = [getattr(base, field) for field in family.fields]
    scale = [max(abs(value), 1e-9) for value in start]
    result = least_squares(
        residuals, start, bounds=(family.lower, family.upper), x_scale=scale, diff_step=1e-4
    )
    return base.model_copy(update=dict(zip(family.fields, map(float, result.x), strict=True)))


def fit(rows: list[Row]) -> dict[str, Calibration]:
    """Per measured GPU, fit each family that has rows; others come from the reference GPU."""
    measured = sorted({row.gpu for row in rows})
    fitted: dict[str, Calibration] = {}
    for gpu_name in [REFERENCE_GPU, *(g for g in measured if g != REFERENCE_GPU)]:
        cal = start_calibration(get_gpu(gpu_name))
        borrowed = []
        for family in FAMILIES:
            own = [r for r in rows if r.gpu == gpu_name and r.family == family.name and r.fitted]
            if own:
                cal = fit_family(cal, family, own)
            else:
                reference = fitted[REFERENCE_GPU]
                cal = cal.model_copy(update={f: getattr(reference, f) for f in family.fields})
                borrowed.append(family.name)
        if borrowed:
            note = f"{gpu_name}; {', '.join(borrowed)} from {REFERENCE_GPU}"
            cal = cal.model_copy(update={"measured_on": note})
        fitted[gpu_name] = cal
    for gpu_name in gpu_names():
        fitted.setdefault(gpu_name, fitted[REFERENCE_GPU])
    return fitted


# --------------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class FitError:
    family: str
    op: str
    gpu: str
    source: str
    fitted: bool
    rows: int
    median_abs_rel_error: float
    p90_abs_rel_error: float


def fit_errors(rows: list[Row], calibrations: dict[str, Calibration]) -> list[FitError]:
    """Median and 90th percentile of |predicted / measured - 1| per op, GPU and source."""
    groups: dict[tuple[str, str, str, str, bool], list[float]] = {}
    for row in rows:
        error = abs(row.predict(calibrations[row.gpu]) / row.measured_s - 1.0)
        groups.setdefault((row.family, row.op, row.gpu, row.source, row.fitted), []).append(error)
    return [
        FitError(*key, len(errors), statistics.median(errors), _quantile(errors, 0.9))
        for key, errors in sorted(groups.items())
    ]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def format_errors(errors: list[FitError]) -> str:
    lines = [
        f"{'family':<17} {'op':<27} {'gpu':<5} {'source':<24} {'rows':>6} {'median':>7} {'p90':>7}"
    ]
    for e in errors:
        op = e.op if e.fitted else f"{e.op} (held out)"
        lines.append(
            f"{e.family:<17} {op:<27} {e.gpu:<5} {e.source:<24} {e.rows:>6} "
            f"{e.median_abs_rel_error:>7.1%} {e.p90_abs_rel_error:>7.1%}"
        )
    return "\n".join(lines)


def calibration_document(calibrations: dict[str, Calibration], errors: list[FitError]) -> dict:
    return {
        "generated_by": "python -m sim.perf.fit",
        "data": "shared/data (see shared/data/SOURCES.md)",
        "reference_gpu": REFERENCE_GPU,
        "gpus": {name: cal.model_dump() for name, cal in sorted(calibrations.items())},
        "fit_errors": [
            {
                **e.__dict__,
                "median_abs_rel_error": round(e.median_abs_rel_error, 4),
                "p90_abs_rel_error": round(e.p90_abs_rel_error, 4),
            }
            for e in errors
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared/data")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "data" / CALIBRATION_FILE,
        help="where to write the calibration",
    )
    parser.add_argument("--check", action="store_true", help="print errors, write nothing")
    args = parser.parse_args(argv)
    rows = load_rows(args.data)
    calibrations = fit(rows)
    errors = fit_errors(rows, calibrations)
    print(format_errors(errors))
    for name, cal in sorted(calibrations.items()):
        print(f"\n{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in cal if isinstance(v, float)))
    if not args.check:
        document = calibration_document(calibrations, errors)
        args.output.write_text(json.dumps(document, indent=1) + "\n")
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
