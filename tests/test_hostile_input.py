"""Hostile input: every case here once hung, ran out of memory, printed a traceback or gave a
silently wrong result; each must now be an InputError (exit 2) naming the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.errors import InputError
from sim.experiments.sweep import parse_seeds
from sim.scenario_loader import load_scenario, parse_scenario
from sim.workload.traces import TraceConfig, load_trace, replayed_trace

GOOD = """\
name: quickstart
seed: 42
duration_s: 30m
warmup_s: 2m
models:
  llama-8b:
    architecture: llama-3.1-8b
    pools:
      standard:
        gpu: h100
        replicas: 4
        perf: {model: roofline}
    routing: {policy: least_loaded}
accounts:
  - {name: acme, spend_tier: 2}
traffic:
  - name: chat
    account: acme
    model: llama-8b
    arrivals:
      process: profile
      interpolation: linear
      points: [[0, 10], [30m, 110]]
    prompt_tokens: {dist: lognormal, median: 1000, sigma: 0.8, max: 32000}
    output_tokens: {dist: lognormal, median: 200, sigma: 0.6, max: 4096}
    tier_mix: {standard: 0.9, priority: 0.1}
"""
PROMPT = "prompt_tokens: {dist: lognormal, median: 1000, sigma: 0.8, max: 32000}"
ARRIVALS = "      interpolation: linear\n      points: [[0, 10], [30m, 110]]\n"


def _error(text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml", overrides)
    return str(caught.value)


def _sessions(extra: str) -> str:
    sessions = f"    sessions: {{turns: {{dist: constant, value: 3}}{extra}}}\n"
    return GOOD.replace("    tier_mix:", sessions + "    tier_mix:")


def test_an_alias_bomb_is_refused_after_visiting_each_node_once() -> None:
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
    )
    message = _error(bomb + GOOD)  # 10^10 values once expanded
    assert "aliases (*name) expand it to 1.23e+10 values" in message


def test_a_few_aliases_are_fine_and_located() -> None:
    text = GOOD.replace("  - {name: acme, spend_tier: 2}", "  - &acme {name: acme, spend_tier: 2}")
    text = text.replace("traffic:\n", "  - *acme\ntraffic:\n")
    assert "duplicate account name 'acme'" in _error(text)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_is_not_read(path: str) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        load_scenario(Path(path))


def test_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_scenario(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_trace(fifo, TraceConfig(path=str(fifo), format="mooncake"))


def test_a_file_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.scenario_loader

    monkeypatch.setattr(sim.scenario_loader, "SCENARIO_MAX_BYTES", 100)
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    with pytest.raises(InputError, match="larger than"):
        load_scenario(path)


@pytest.mark.parametrize(
    "data", [GOOD.encode("utf-16"), GOOD.encode() + b"\n# caf\xe9\n"], ids=["utf-16", "latin-1"]
)
def test_a_scenario_that_is_not_utf8(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    with pytest.raises(InputError, match="not UTF-8 text"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("duration_s: 30m", "duration_s: .inf", "duration_s"),
        ("warmup_s: 2m", "warmup_s: 2m\ndrain_s: .inf", "drain_s"),
        ("warmup_s: 2m", "warmup_s: 2m\nsample_interval_s: .nan", "sample_interval_s"),
        (PROMPT, "prompt_tokens: {dist: normal, mean: .nan, std: 10}", "prompt_tokens.mean"),
        (
            PROMPT,
            "prompt_tokens: {dist: empirical, values: [1, 2], weights: [1, .inf]}",
            "prompt_tokens.weights.1",
        ),
        ("perf: {model: roofline}", "perf: {model: roofline, draft_cost_ratio: .inf}", "perf"),
        ("[[0, 10], [30m, 110]]", "[[0, 10], [30m, .inf]]", "arrivals.points"),
        ("duration_s: 30m", "duration_s: 1e400s", "duration_s"),
    ],
)
def test_non_finite_numbers_are_refused(old: str, new: str, field: str) -> None:
    assert old in GOOD
    message = _error(GOOD.replace(old, new))
    assert field in message and "finite" in message


def test_an_infinite_think_time_is_refused() -> None:
    message = _error(_sessions(", think_time_s: {dist: exponential, mean_s: .inf}"))
    assert "think_time_s" in message and "finite" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("traffic:\n", "traffic: 5\nx:\n", "traffic: Input should be a valid list"),
        ("process: profile", "process: gamma\n      rate_per_s: 5\n      cv: 1.0e-300", "cv"),
        ("replicas: 4", "replicas: 1.0e+30", "replicas"),
        ("replicas: 4", "replicas: 1000000000", "replicas: must be <= 100000"),
        ("duration_s: 30m", "duration_s: 1.0e+12", "duration_s: must be <= 1000000000"),
        ("{name: acme, spend_tier: 2}", "{name: acme, users: 1.0e+30}", "users"),
        ("seed: 42", "seed: 100000000000000000000000", "seed: must be <="),
    ],
)
def test_sizes_are_bounded(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new)
    if "process: gamma" in new:
        text = text.replace(ARRIVALS, "")
    assert expected in _error(text)


def test_absurd_work_is_refused_with_the_estimate() -> None:
    fast = GOOD.replace("[[0, 10], [30m, 110]]", "[[0, 1.0e+9]]")
    assert "traffic.0: the run would send about 1.8e+12 requests" in _error(fast)
    long = GOOD.replace("duration_s: 30m", "duration_s: 1.0e+8")
    assert "about 1.1e+10 requests" in _error(long)
    sampled = GOOD.replace("warmup_s: 2m", "warmup_s: 2m\nsample_interval_s: 1.0e-9")
    assert "time series would have about 7.2e+12 rows" in _error(sampled)
    assert "system_prompts: must be <= 1000000" in _error(_sessions(", system_prompts: 1.0e+9"))
    sessions = _sessions("").replace("[[0, 10], [30m, 110]]", "[[0, 1.0e+5]]")
    assert "the run would start about 1.8e+08 sessions" in _error(sessions)
    capped = fast.replace("tier_mix:", "max_requests: 1000\n    tier_mix:")
    parse_scenario(capped, "x.yaml")  # max_requests bounds the work


def test_a_million_accounts_load_without_a_quadratic_check() -> None:
    accounts = "".join(f"  - {{name: a{i}}}\n" for i in range(200_000))
    text = GOOD.replace("  - {name: acme, spend_tier: 2}\n", accounts + "  - {name: acme}\n")
    assert len(parse_scenario(text, "x.yaml").accounts) == 200_001


# --set paths ---------------------------------------------------------------------------------


def test_set_refuses_a_path_through_a_mistyped_name() -> None:
    message = _error(GOOD, ("models.llama-8b.pools.standrd.replicas=3",))
    assert "models.llama-8b.pools has no 'standrd'; did you mean 'standard'?" in message
    assert "models.llama-8b.pools.standrd={...}" in message


def test_set_refuses_a_path_through_an_unknown_field() -> None:
    message = _error(GOOD, ("traffic.0.sesions.turns=3",))
    assert "traffic.0 has no 'sesions'; did you mean 'sessions'?" in message


def test_set_adds_a_named_entry_set_whole_and_fills_schema_sections() -> None:
    scenario = parse_scenario(
        GOOD,
        "x.yaml",
        (
            "models.llama-8b.pools.standard.tiers=[standard, priority]",
            "models.llama-8b.pools.extra={gpu: h100, replicas: 2, tiers: [batch]}",
            "traffic.0.sessions.turns={dist: constant, value: 2}",
            "accounts.0.spent_usd_at_start=10",  # a schema field the file leaves out
        ),
    )
    assert scenario.accounts[0].spent_usd_at_start == 10
    assert scenario.models["llama-8b"].pools["extra"].replicas == 2
    sessions = scenario.traffic[0].sessions
    assert sessions is not None and sessions.turns.mean == 2


def test_set_refuses_a_list_index_out_of_range() -> None:
    assert "traffic has entries 0 to 0, not '3'" in _error(GOOD, ("traffic.3.name=x",))


def test_seeds_are_bounded() -> None:
    with pytest.raises(InputError, match="at most 100,000"):
        parse_seeds("0-99999999")
    assert parse_seeds("0-2,5") == [0, 1, 2, 5]


# Traces --------------------------------------------------------------------------------------


def _trace_file(tmp_path: Path, line: str, name: str = "t.jsonl") -> Path:
    good = json.dumps({"timestamp": 0, "input_length": 5, "output_length": 5, "hash_ids": [1]})
    path = tmp_path / name
    path.write_text(good + "\n" + line + "\n")
    return path


def _line(**changes: object) -> str:
    return json.dumps(
        {"timestamp": 1, "input_length": 5, "output_length": 5, "hash_ids": [1]} | changes
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"timestamp": 1, "input_length": 1' + "0" * 4300 + "}", "too many digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (_line(timestamp="x" * 200_000), "(200,002 characters)"),
        (_line(timestamp=1e300), "timestamp: must be within"),
        (_line(output_length=10**30), "output_length: must be at most 10,000,000 tokens"),
    ],
    ids=["huge-int", "deep", "long-field", "far-time", "huge-length"],
)
def test_hostile_trace_lines(tmp_path: Path, line: str, expected: str) -> None:
    path = _trace_file(tmp_path, line)
    with pytest.raises(InputError) as caught:
        load_trace(path, TraceConfig(path=str(path), format="mooncake"))
    assert str(caught.value).startswith(f"{path}:2: ") and expected in str(caught.value)
    assert len(str(caught.value)) < 300


def test_a_csv_field_over_the_csv_limit(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,2," + "9" * 200_000 + "\n")
    with pytest.raises(InputError, match="not valid CSV: field larger than field limit"):
        load_trace(path, TraceConfig(path=str(path), format="csv"))


def test_a_looped_trace_spanning_a_femtosecond_is_refused(tmp_path: Path) -> None:
    records = [
        {"timestamp": t, "input_length": 5, "output_length": 5, "hash_ids": [1]}
        for t in (0, 1e-12)  # ms: the trace spans 1e-15 s
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    config = TraceConfig(path=str(path), format="mooncake", loop=True)
    with pytest.raises(InputError, match=r"replays about 1\.8e\+18 requests"):
        replayed_trace(config, 1800.0, None)
    assert len(replayed_trace(config, 1800.0, 7)) == 7  # max_requests bounds the copies


def test_validate_reads_traces_as_run_does(tmp_path: Path) -> None:
    trace = _trace_file(tmp_path, '{"timestamp": 2, "input_length": "many"}')
    scenario = tmp_path / "s.yaml"
    text = GOOD.replace(ARRIVALS, "").replace("      process: profile\n", "")
    text = text.replace("    arrivals:\n", f"    trace: {{path: {trace.name}, format: mooncake}}\n")
    text = text.replace(f"    {PROMPT}\n", "").replace(
        "    output_tokens: {dist: lognormal, median: 200, sigma: 0.6, max: 4096}\n", ""
    )
    scenario.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(scenario)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"{trace}:2: output_length: is missing" in done.stderr
