"""The command line as a user runs it: files written, resolved scenario reproducible, examples
valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import tables_equal

from sim.results.records import REQUEST_COLUMNS
from sim.scenario_loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted(
    (ROOT / "benchmarks").glob("*.yaml")
)


def _capsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_scenario_is_valid(path: Path) -> None:
    if "shared/data" in path.read_text() and not SHARED_DATA.is_dir():
        pytest.skip("replays a trace from ../shared/data, which is not beside the repo")
    scenario = load_scenario(path)
    assert scenario.name


def test_run_writes_every_result_and_the_resolved_scenario_reproduces_it(tmp_path: Path) -> None:
    out = tmp_path / "quick"
    short = ["--set", "duration_s=90", "--set", "warmup_s=10"]
    done = _capsim(
        "run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out), *short, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {
        "requests.parquet",
        "timeseries.parquet",
        "cache_hits.parquet",
        "summary.json",
        "scenario.resolved.yaml",
        "plots",
    }
    for plot in ("latency_cdf.png", "latency_load_over_time.png", "kv_cache_over_time.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    requests = pq.read_table(out / "requests.parquet")
    assert set(REQUEST_COLUMNS) <= set(requests.column_names)
    summary = json.loads((out / "summary.json").read_text())
    group = summary["models"]["llama-8b"]["tiers"]["standard"]
    assert group["by_status"]["200"] > 0
    for metric in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        assert {"p50", "p90", "p99"} <= set(group[metric])
    assert 0 < summary["pools"][0]["utilisation"] <= 1
    # The resolved scenario is a complete scenario: running it gives the same requests.
    again = tmp_path / "again"
    done = _capsim(
        "run", str(out / "scenario.resolved.yaml"), "--out", str(again), "--no-plots", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert tables_equal(pq.read_table(again / "requests.parquet"), requests)
    assert not (again / "plots").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


def test_schema_is_json_schema(tmp_path: Path) -> None:
    done = _capsim("schema", cwd=tmp_path)
    schema = json.loads(done.stdout)
    assert schema["title"] == "Scenario" and "models" in schema["properties"]


def test_trace_stats_and_perf_commands(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,20,5\n3,30,5\n")
    stats = json.loads(_capsim("trace-stats", str(trace), "--json", cwd=tmp_path).stdout)
    assert stats["requests"] == 3 and stats["rate_per_s"] == pytest.approx(2 / 3)
    perf = json.loads(
        _capsim("perf", "--gpu", "h100", "--model", "llama-3.1-8b", "--json", cwd=tmp_path).stdout
    )
    assert set(perf) == {"prefill", "decode", "kv_capacity_tokens"}
    bad = _capsim("perf", "--gpu", "h900", "--model", "llama-3.1-8b", cwd=tmp_path)
    assert bad.returncode == 2 and "h100" in bad.stderr
