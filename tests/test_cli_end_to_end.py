"""The command line as a user runs it: files written, resolved scenario reproducible, examples
valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import tables_equal
from jsonschema import Draft202012Validator

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
        "limits.parquet",
        ".capsim-run",
        "bill.parquet",
        "economics.json",
        "timeseries.parquet",
        "cache_hits.parquet",
        "summary.json",
        "scenario.resolved.yaml",
        "run.json",
        "plots",
    }
    plotted = (
        "latency_cdf",
        "latency_load_over_time",
        "kv_cache_over_time",
        "cost_per_mtok_by_model",
    )
    for plot in (f"{name}.png" for name in plotted):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    requests = pq.read_table(out / "requests.parquet")
    assert set(REQUEST_COLUMNS) <= set(requests.column_names)
    summary = json.loads((out / "summary.json").read_text())
    group = summary["models"]["llama-8b"]["tiers"]["standard"]
    assert group["by_status"]["200"] > 0
    for metric in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        assert {"p50", "p90", "p99"} <= set(group[metric])
    assert 0 < summary["pools"][0]["utilisation"] <= 1
    assert json.loads((out / "economics.json").read_text()) == summary["economics"]
    # an editable checkout always runs pure Python (setup.py refuses to compile it)
    assert json.loads((out / "run.json").read_text())["build"] == "pure"
    assert "economics, measured window" in done.stdout
    # The resolved scenario is a complete scenario: running it gives the same requests.
    resolved = yaml.safe_load((out / "scenario.resolved.yaml").read_text())
    assert resolved["sample_interval_s"] == 1.0  # duration / 300, at least 1 s
    again = tmp_path / "again"
    done = _capsim(
        "run", str(out / "scenario.resolved.yaml"), "--out", str(again), "--no-plots", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert tables_equal(pq.read_table(again / "requests.parquet"), requests)
    assert not (again / "plots").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


@pytest.fixture(scope="module")
def emitted_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = _capsim("schema", cwd=tmp_path_factory.mktemp("schema"))
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    return schema


def test_schema_is_standard_json_schema(emitted_schema: dict[str, Any]) -> None:
    assert emitted_schema["title"] == "Scenario" and "models" in emitted_schema["properties"]
    Draft202012Validator.check_schema(emitted_schema)
    annotations = {"title", "description", "default", "$defs", "discriminator"}  # OpenAPI's
    unknown = _keywords(emitted_schema) - set(Draft202012Validator.VALIDATORS) - annotations
    assert not unknown  # pydantic's own names (gt, ge) would be ignored by editors


def _keywords(schema: Any) -> set[str]:
    """Every keyword used in a schema, not counting property names and discriminator mappings."""
    if isinstance(schema, list):
        return set().union(*(_keywords(item) for item in schema))
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for keyword, value in schema.items():
        if keyword in ("properties", "$defs"):
            found |= set().union(*(_keywords(sub) for sub in value.values()))
        elif keyword != "discriminator":
            found |= _keywords(value)
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_scenario_passes_the_emitted_schema(
    path: Path, emitted_schema: dict[str, Any]
) -> None:
    """Editors check files with `capsim schema`: duration strings ('30m') must pass it too."""
    Draft202012Validator(emitted_schema).validate(yaml.safe_load(path.read_text()))


def test_the_emitted_schema_takes_duration_strings_where_the_loader_does(
    emitted_schema: dict[str, Any],
) -> None:
    validator = Draft202012Validator(emitted_schema)
    scenario = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    for good in ("1500ms", "2h", "1.5 min", 90, 0.5):
        validator.validate({**scenario, "duration_s": good, "warmup_s": 0})
    for bad in ("30 minutes", "-5s", "", 0, -1):
        assert not validator.is_valid({**scenario, "duration_s": bad, "warmup_s": 0}), bad


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


def test_run_refuses_an_out_folder_that_is_not_a_run_and_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("precious")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "trace.csv").write_text("precious too")
    quickstart = str(ROOT / "scenarios" / "quickstart.yaml")
    for out in (".", "data"):
        done = _capsim("run", quickstart, "--out", out, "--set", "duration_s=300", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "is not a capsim run folder" in done.stderr and "Traceback" not in done.stderr
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")} == {
        "notes.md",
        "data",
        "data/trace.csv",
    }


def test_sweep_refuses_a_run_folder_that_is_not_a_run(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "quickstart.yaml"
    taken = tmp_path / "sweep" / "seed=0"
    taken.mkdir(parents=True)
    (taken / "keep.txt").write_text("precious")
    done = _capsim("sweep", str(scenario), "--seeds", "0", "--out", "sweep", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{taken}: holds files but is not a capsim run folder" in done.stderr
    assert [p.name for p in (tmp_path / "sweep").iterdir()] == ["seed=0"]
    assert (taken / "keep.txt").read_text() == "precious"


def test_perf_plot_must_be_a_png_file(tmp_path: Path) -> None:
    perf = ("perf", "--gpu", "h100", "--model", "llama-3.1-8b", "--plot")
    for plot, expected in ((".", "is a folder"), ("plot.txt", "ending in .png"), ("p", ".png")):
        done = _capsim(*perf, plot, cwd=tmp_path)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())
    assert _capsim(*perf, "out/perf.PNG", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "perf.PNG").is_file()
