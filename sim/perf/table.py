"""`capsim perf`: what the roofline model predicts for one model on one GPU type.

`perf_report` is the `--json` output as is; `format_perf_table` and `plot_perf` only read it.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from sim.perf.config import RooflinePerf
from sim.perf.roofline import RooflineModel, build_batch_time_model
from sim.report.style import legend, new_figure, plot_function

PROMPT_TOKENS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTEXT_TOKENS = (512, 2048, 8192, 32768)
DEFAULT_CHUNK_TOKENS = 8192  # the pool's default max_batched_tokens


def prefill_time_s(model: RooflineModel, prompt_tokens: int, chunk_tokens: int) -> float:
    """A lone request's prompt, prefilled in chunks of at most `chunk_tokens`, one per iteration."""
    time_s = 0.0
    done = 0
    while done < prompt_tokens:
        chunk = min(chunk_tokens, prompt_tokens - done)
        time_s += model.iteration_time_s(0, 0, [(chunk, done)])
        done += chunk
    return time_s


def perf_report(
    gpu: str,
    model: str,
    tp: int,
    context_tokens: int = 2048,
    cfg: RooflinePerf | None = None,
    memory_utilization: float = 0.9,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> dict[str, Any]:
    """Prefill times by prompt length and decode step times by batch and context (tokens per
    sequence), for every case whose KV cache fits; raises InputError if the model does not."""
    perf = build_batch_time_model(model, gpu, tp, cfg)
    capacity = perf.kv_capacity_tokens(memory_utilization)
    prefill = [
        {"prompt_tokens": tokens, "time_s": prefill_time_s(perf, tokens, chunk_tokens)}
        for tokens in PROMPT_TOKENS
        if tokens <= capacity
    ]
    decode = []
    for context in sorted({*CONTEXT_TOKENS, context_tokens}):
        max_batch = capacity // context
        for batch in sorted({*(b for b in BATCH_SIZES if b <= max_batch), max_batch} - {0}):
            time_s = perf.iteration_time_s(batch, batch * context, [])
            decode.append({"batch": batch, "context_tokens": context, "time_s": time_s})
    return {"prefill": prefill, "decode": decode, "kv_capacity_tokens": capacity}


def max_batch(report: dict[str, Any], context_tokens: int) -> int:
    """Most sequences of `context_tokens` each that the KV cache holds at once."""
    return report["kv_capacity_tokens"] // context_tokens


def format_perf_table(report: dict[str, Any], title: str = "") -> str:
    """Plain-text tables: prefill by prompt length, decode by context and batch."""
    lines = [title] if title else []
    lines += [f"KV cache capacity: {report['kv_capacity_tokens']:,} tokens", ""]
    lines += [
        "Prefill (one request alone)",
        f"{'prompt tokens':>14} {'time ms':>10} {'tokens/s':>10}",
    ]
    for row in report["prefill"]:
        rate = row["prompt_tokens"] / row["time_s"]
        lines.append(f"{row['prompt_tokens']:>14,} {row['time_s'] * 1e3:>10.2f} {rate:>10,.0f}")
    lines += ["", "Decode step (every sequence at the same context)"]
    lines.append(f"{'context tokens':>14} {'batch':>6} {'step ms':>10} {'generated tok/s':>16}")
    context = None
    for row in report["decode"]:
        if row["context_tokens"] != context:
            context = row["context_tokens"]
            lines.append(f"{context:>14,} {'':>6} max batch {max_batch(report, context):,}")
        rate = row["batch"] / row["time_s"]
        lines.append(f"{'':>14} {row['batch']:>6} {row['time_s'] * 1e3:>10.2f} {rate:>16,.0f}")
    return "\n".join(lines)


@plot_function
def plot_perf(report: dict[str, Any], title: str = "") -> Figure:
    """Generated tokens/s against batch size, one line per context length."""
    fig, ax = new_figure(figsize=(7, 4.5))
    for context in sorted({row["context_tokens"] for row in report["decode"]}):
        rows = [row for row in report["decode"] if row["context_tokens"] == context]
        batches = [row["batch"] for row in rows]
        rates = [row["batch"] / row["time_s"] for row in rows]
        ax.plot(batches, rates, marker="o", label=f"{context:,} tokens of context")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (sequences decoding at once)")
    ax.set_ylabel("generated tokens per second per replica (tokens/s)")
    ax.set_title(title or "Decode throughput")
    legend(ax)
    return fig
