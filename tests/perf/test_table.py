"""`capsim perf`: a report for every catalog pair that fits, in the documented JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.errors import InputError
from sim.perf.catalog import architecture_names, gpu_names
from sim.perf.table import format_perf_table, perf_report, plot_perf
from sim.report.style import save

TP_DEGREES = (1, 2, 4, 8)


def smallest_fitting_report(gpu: str, model: str) -> tuple[int, dict] | None:
    for tp in TP_DEGREES:
        try:
            return tp, perf_report(gpu, model, tp, context_tokens=2048)
        except InputError:
            continue
    return None


@pytest.mark.parametrize("gpu", gpu_names())
@pytest.mark.parametrize("model", architecture_names())
def test_report_for_every_pair_that_fits(gpu: str, model: str) -> None:
    found = smallest_fitting_report(gpu, model)
    if found is None:
        assert model == "deepseek-v3" and gpu in ("a100", "h100")  # 671 GB of FP8 weights
        return
    _, report = found
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"prefill", "decode", "kv_capacity_tokens"}
    assert isinstance(report["kv_capacity_tokens"], int) and report["kv_capacity_tokens"] > 0
    assert all(set(row) == {"prompt_tokens", "time_s"} for row in report["prefill"])
    assert all(set(row) == {"batch", "context_tokens", "time_s"} for row in report["decode"])
    prefill = [row["time_s"] for row in report["prefill"]]
    assert prefill and prefill == sorted(prefill) and prefill[0] > 0
    at_context = [row for row in report["decode"] if row["context_tokens"] == 2048]
    assert at_context[-1]["batch"] == report["kv_capacity_tokens"] // 2048
    for context in {row["context_tokens"] for row in report["decode"]}:
        rows = [row for row in report["decode"] if row["context_tokens"] == context]
        assert rows[-1]["batch"] * context <= report["kv_capacity_tokens"]
        assert [row["time_s"] for row in rows] == sorted(row["time_s"] for row in rows)


def test_table_and_plot(tmp_path: Path) -> None:
    report = perf_report("h100", "llama-3.1-8b", 1, context_tokens=3000)
    text = format_perf_table(report, "llama-3.1-8b on 1 x h100")
    assert "KV cache capacity: " in text and "max batch" in text
    assert f"{report['kv_capacity_tokens'] // 3000}" in text
    path = save(plot_perf(report), tmp_path / "perf.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
