"""Trace files: formats, bad lines, windows and scaling, looping, block re-chunking, statistics,
and the simulator reproducing the infinite-cache hit ratio."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine import simulate
from sim.errors import InputError
from sim.experiments.runner import run_scenario
from sim.scenario import Scenario
from sim.workload.chains import block_ids, trace_runs
from sim.workload.trace_stats import (
    format_trace_stats,
    infinite_cache_hit_ratio,
    trace_stats,
    trace_stats_command,
)
from sim.workload.traces import Trace, TraceConfig, load_trace, rechunk_block_ids

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CAPSIM_DATA", REPO.parent / "shared" / "data")) / "traces"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the repo")


def _record(t_ms: float, prompt: int, output: int = 5, ids: list[int] | None = None) -> dict:
    return {
        "timestamp": t_ms,
        "input_length": prompt,
        "output_length": output,
        "hash_ids": ids if ids is not None else list(range(-(-prompt // 512))),
    }


def _mooncake(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _config(fmt: str = "mooncake", **extra: object) -> TraceConfig:
    return TraceConfig.model_validate({"path": "x", "format": fmt, **extra})


def _trace(block_ids: list[list[int]], prompts: list[int], block_size: int = 512) -> Trace:
    return Trace(
        arrival_s=np.arange(len(prompts), dtype=float),
        prompt_tokens=np.array(prompts, dtype=np.int64),
        output_tokens=np.ones(len(prompts), dtype=np.int64),
        block_ids=block_ids,
        block_size=block_size,
        path="by-hand",
        skipped_lines=0,
    )


# Loading


def test_mooncake_sorted_stably_rebased_and_scaled(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path,
        [
            _record(3000, 600, 5, [0, 1]),
            _record(1000, 100, 7, [0]),
            _record(3000, 700, 9, [0, 2]),  # ties keep file order
        ],
    )
    trace = load_trace(path, _config())
    assert trace.arrival_s.tolist() == [0.0, 2.0, 2.0]
    assert trace.prompt_tokens.tolist() == [100, 600, 700]
    assert trace.output_tokens.tolist() == [7, 5, 9]
    assert trace.block_ids == [[0], [0, 1], [0, 2]] and trace.block_size == 512
    assert trace.arrival_s.dtype == np.float64 and trace.prompt_tokens.dtype == np.int64
    assert trace.span_s == 2.0 and len(trace) == 3 and trace.skipped_lines == 0
    assert load_trace(path, _config(time_scale=4)).arrival_s.tolist() == [0.0, 0.5, 0.5]


def test_block_ids_are_renumbered_by_first_appearance(tmp_path: Path) -> None:
    """Ids carry identity only; 64-bit hashes become small numbers with the same sharing."""
    big = 2**63 - 1
    path = _mooncake(tmp_path, [_record(0, 1000, ids=[big, -7]), _record(1, 600, ids=[big, 42])])
    assert load_trace(path, _config()).block_ids == [[0, 1], [0, 2]]


def _bad(**fields: object) -> str:
    return json.dumps(_record(5, 100) | fields)


MUST = "must be an integer >= 1, got"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input_length": "abc"}', "timestamp: is missing"),
        (_bad(input_length="abc"), f'input_length: {MUST} "abc"'),
        (_bad(input_length=0), f"input_length: {MUST} 0"),
        (_bad(output_length=-3), f"output_length: {MUST} -3"),
        (_bad(output_length=2.5), f"output_length: {MUST} 2.5"),
        (_bad(output_length=True), f"output_length: {MUST} true"),
        (_bad(timestamp="soon"), 'timestamp: must be a number, got "soon"'),
        (_bad(input_length=1000, hash_ids=[1]), "hash_ids: has 1 ids, 1000 tokens need 2"),
        (_bad(hash_ids=["a"]), "hash_ids: must be a list of 64-bit integers"),
        (_bad(hash_ids=[2**64]), "hash_ids: must be a list of 64-bit integers"),
        ("{not json", r"\(line\): not valid JSON"),
        ("[1, 2]", r"\(line\): expected a JSON object"),
    ],
)
def test_bad_mooncake_line_names_file_line_and_field(
    tmp_path: Path, line: str, message: str
) -> None:
    good = json.dumps(_record(0, 100))
    path = tmp_path / "t.jsonl"
    path.write_text(f"{good}\n\n{line}\n{good}\n")  # the blank line still counts
    with pytest.raises(InputError, match=rf"^{path}:3: {message}"):
        load_trace(path, _config())
    trace = load_trace(path, _config(on_bad_line="skip"))
    assert len(trace) == 2 and trace.skipped_lines == 1


def test_azure(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47,10,1\n"
    )
    trace = load_trace(path, _config("azure"))
    assert trace.arrival_s == pytest.approx([0.0, 0.31941, 4.314579], abs=1e-6)
    assert trace.prompt_tokens.tolist() == [374, 10, 396]
    assert trace.output_tokens.tolist() == [44, 1, 109]
    assert trace.block_ids is None and trace.block_size is None


def test_azure_times_are_wall_clock_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No time zone is applied: a local daylight-saving jump does not shorten the gap."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        path = tmp_path / "a.csv"
        path.write_text(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-03-12 01:59:59.5,1,1\n2023-03-12 03:00:00.5,1,1\n"
        )
        assert load_trace(path, _config("azure")).arrival_s[1] == pytest.approx(3601.0)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("yesterday,10,10", 'TIMESTAMP: must be a date and time, got "yesterday"'),
        ("2023-11-16 18:15:46.68x,10,10", "TIMESTAMP: must be a date and time"),
        ("2023-11-16 18:15:46,1.5,10", 'ContextTokens: must be an integer >= 1, got "1.5"'),
        ("2023-11-16 18:15:46,10,0", 'GeneratedTokens: must be an integer >= 1, got "0"'),
        ("2023-11-16 18:15:46,10", "GeneratedTokens: must be an integer >= 1, got null"),
    ],
)
def test_bad_azure_row(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n{row}\n")
    with pytest.raises(InputError, match=rf"^{path}:3: {message}"):
        load_trace(path, _config("azure"))
    assert load_trace(path, _config("azure", on_bad_line="skip")).skipped_lines == 1


def test_plain_csv(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("t,in,out\n500,10,20\n0,30,40\n1500.5,5,x\n")
    config = _config(
        "csv",
        time_unit="ms",
        on_bad_line="skip",
        columns={"arrival_s": "t", "prompt_tokens": "in", "output_tokens": "out"},
    )
    trace = load_trace(path, config)
    assert trace.arrival_s.tolist() == [0.0, 0.5] and trace.prompt_tokens.tolist() == [30, 10]
    assert trace.skipped_lines == 1 and trace.block_ids is None
    with pytest.raises(InputError, match=rf"^{path}:4: out: must be an integer >= 1"):
        load_trace(path, config.model_copy(update={"on_bad_line": "error"}))
    with pytest.raises(InputError, match=r":1: missing column\(s\) arrival_s, prompt_tokens"):
        load_trace(path, _config("csv"))
    default = tmp_path / "d.csv"
    default.write_text("arrival_s,prompt_tokens,output_tokens\n0.25,3,4\n1.25,5,6\n")
    assert load_trace(default, _config("csv")).arrival_s.tolist() == [0.0, 1.0]


def test_missing_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match=rf"^{missing}: no such trace file"):
        load_trace(missing, _config())
    with pytest.raises(InputError, match="no such trace file"):
        trace_stats_command(tmp_path / "nope.csv", None, None)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no requests in the trace"):
        load_trace(empty, _config())


# Window, time scale, looping


def _every_second(tmp_path: Path, count: int = 10) -> Path:
    return _mooncake(tmp_path, [_record(1000 * t, 10, ids=[t]) for t in range(count)])


def test_window_is_in_trace_seconds_before_scaling(tmp_path: Path) -> None:
    path = _every_second(tmp_path)
    window = load_trace(path, _config(start_s=2, end_s=5))  # [2, 5): requests at 2, 3, 4
    assert window.arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert window.prompt_tokens.size == 3 and window.block_ids == [[0], [1], [2]]
    fast = load_trace(path, _config(start_s=2, end_s=5, time_scale=2))
    assert fast.arrival_s.tolist() == [0.0, 0.5, 1.0]
    durations = load_trace(path, _config(start_s="2000ms", end_s="5s"))
    assert durations.arrival_s.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(InputError, match=r"no requests in the window \[20, end\) s; .* spans 9 s"):
        load_trace(path, _config(start_s=20))
    with pytest.raises(ValueError, match=r"end_s .* must be after start_s"):
        _config(start_s=5, end_s=5)
    with pytest.raises(ValueError, match="time_scale"):
        _config(time_scale=0)


def test_loop_tiles_with_a_typical_gap_and_keeps_content(tmp_path: Path) -> None:
    window = load_trace(_every_second(tmp_path), _config(start_s=2, end_s=5))
    looped = window.repeated_until(7.5)  # span 2 s + mean gap 1 s: period 3 s
    assert looped.arrival_s.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert looped.block_ids == [[0], [1], [2]] * 2 + [[0], [1]]  # a replay replays content
    assert looped.prompt_tokens.size == looped.output_tokens.size == 8
    assert window.repeated_until(2.0).arrival_s.tolist() == [0.0, 1.0]
    single = load_trace(_every_second(tmp_path, 1), _config())
    with pytest.raises(InputError, match="cannot loop"):
        single.repeated_until(10.0)


# Re-chunking


def test_rechunk_examples() -> None:
    # Split 512 -> 16: 32 ids per trace block, only the prompt's full blocks (600 // 16 = 37).
    assert rechunk_block_ids([4, 9], 600, 512, 16) == [128 + k for k in range(32)] + [
        288 + k for k in range(5)
    ]
    # Merge 16 -> 512: named by the last trace block inside; 1100 tokens hold 2 full blocks.
    trace = list(range(100, 169))
    assert rechunk_block_ids(trace, 1100, 16, 512) == [131, 163]
    # 16 -> 24: block j ends at token 24(j+1); named by the trace block holding token 24(j+1)-1.
    assert rechunk_block_ids([7, 8, 9], 48, 16, 24) == [8, 9]
    assert rechunk_block_ids([7], 10, 512, 16) == []
    with pytest.raises(ValueError, match="too few"):
        rechunk_block_ids([7], 513, 512, 16)


_sizes = st.sampled_from([512, 16, 64, 100])


@settings(max_examples=60, deadline=None)
@given(
    parents=st.lists(st.integers(0, 1000), min_size=1, max_size=12),
    paths=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 511)), min_size=1, max_size=6),
    from_size=_sizes,
    to_size=st.sampled_from([16, 24, 100, 512, 1024, 7]),
)
def test_rechunked_ids_name_prefix_and_position(
    parents: list[int], paths: list[tuple[int, int]], from_size: int, to_size: int
) -> None:
    """Prompts are paths in a random tree of trace blocks (node n's parent is a lower node).
    A re-chunked id is shared by two prompts iff both have that full block and its last token
    lies in a shared trace block (so the same node); an id never names two (node, position)
    pairs. The replica's chains (`trace_runs`) induce the same sharing, which is why one
    infinite replica cache reproduces `infinite_cache_hit_ratio`."""
    parent = [-1] + [p % (n + 1) for n, p in enumerate(parents)]  # node n + 1's parent
    prompts: list[tuple[list[int], int]] = []
    for leaf, extra in paths:
        chain = [leaf % len(parent)]
        while parent[chain[-1]] >= 0:
            chain.append(parent[chain[-1]])
        chain.reverse()
        prompts.append((chain, (len(chain) - 1) * from_size + 1 + extra % from_size))
    named: dict[int, tuple[int, int]] = {}
    for ids, tokens in prompts:
        new = rechunk_block_ids(ids, tokens, from_size, to_size)
        assert len(new) == tokens // to_size
        runs = block_ids(trace_runs("s", ids, from_size, tokens, to_size))
        assert len(runs) == len(new)
        for j, block in enumerate(new):
            node = ids[((j + 1) * to_size - 1) // from_size]
            assert named.setdefault(block, (node, j)) == (node, j)
    for (a, a_tokens), (b, b_tokens) in itertools.combinations(prompts, 2):
        new_a = rechunk_block_ids(a, a_tokens, from_size, to_size)
        new_b = rechunk_block_ids(b, b_tokens, from_size, to_size)
        shared_trace = 0
        while shared_trace < min(len(a), len(b)) and a[shared_trace] == b[shared_trace]:
            shared_trace += 1
        shared = sum(x == y for x, y in zip(new_a, new_b, strict=False))
        ends_in_shared = sum(((j + 1) * to_size - 1) // from_size < shared_trace
                             for j in range(min(len(new_a), len(new_b))))  # fmt: skip
        assert shared == ends_in_shared
        runs_a = block_ids(trace_runs("s", a, from_size, a_tokens, to_size))
        runs_b = block_ids(trace_runs("s", b, from_size, b_tokens, to_size))
        assert sum(x == y for x, y in zip(runs_a, runs_b, strict=False)) == shared


# Statistics


def test_infinite_cache_hit_ratio_by_hand() -> None:
    trace = _trace([[1, 2], [1, 2, 3], [1, 9], [1, 2], [5, 5]], [1024, 1536, 1000, 1024, 1024])
    prompts = 1024 + 1536 + 1000 + 1024 + 1024
    # At 512 tokens per block, cached tokens per request:
    # 1: 0, nothing seen. 2: 1,024, blocks 1 and 2. 3: 512, block 1 (9 is not even full).
    # 4: 512: blocks 1 and 2 are seen, but a hit never covers the last prompt token and is
    # whole blocks, so (1,024 - 1) // 512 = 1 block. 5: 0: a block repeated within a request
    # was not seen in an *earlier* one.
    assert infinite_cache_hit_ratio(trace, 512) == pytest.approx((1024 + 512 + 512) / prompts)
    # At 256: 2 reuses 4 blocks (1,024); 3 reuses 1's two halves (512), 9's first half is new;
    # 4 reuses (1,024 - 1) // 256 = 3 blocks (768).
    assert infinite_cache_hit_ratio(trace, 256) == pytest.approx((1024 + 512 + 768) / prompts)
    # At 16: 3 reuses the 32 blocks of 1 (512) and 4 reuses 63 of its 64 blocks (1,008).
    assert infinite_cache_hit_ratio(trace, 16) == pytest.approx((1024 + 512 + 1008) / prompts)


def test_trace_stats_fields() -> None:
    trace = _trace([[1, 2], [1, 2, 3], [1, 9]], [1024, 1536, 1000])
    stats = trace_stats(trace)
    assert stats["requests"] == 3 and stats["span_s"] == 2.0
    assert stats["rate_per_s"] == pytest.approx(1.0) and stats["interarrival_cv"] == 0.0
    assert stats["prompt_tokens"]["p50"] == 1024 and stats["prompt_tokens"]["max"] == 1536
    assert stats["prompt_tokens"]["mean"] == pytest.approx(3560 / 3)
    assert stats["block_size"] == 512 and stats["unique_blocks"] == 3  # 9 is partial in 1000
    assert stats["infinite_cache_hit_ratio"] == pytest.approx(1536 / 3560)
    at_16 = trace_stats(trace, block_size=16)
    assert at_16["block_size"] == 16 and at_16["unique_blocks"] == 32 * 3 + 1000 // 16 - 32
    json.dumps(stats)  # plain types, for --json
    text = format_trace_stats(stats)
    for label in ("requests", "rate (requests/s)", "inter-arrival CV", "infinite-cache hit ratio"):
        assert label in text
    assert "43.1% of prompt tokens" in text


def test_trace_stats_command_guesses_the_format(tmp_path: Path) -> None:
    mooncake = _every_second(tmp_path, 3)
    azure = tmp_path / "a.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n")
    plain = tmp_path / "p.txt"
    plain.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n2,1,1\n")
    assert trace_stats_command(mooncake, None, 16)["block_size"] == 16
    azure_stats = trace_stats_command(azure, None, 16)
    assert azure_stats["requests"] == 1 and azure_stats["infinite_cache_hit_ratio"] is None
    assert azure_stats["rate_per_s"] is None and azure_stats["interarrival_cv"] is None
    assert "no block ids" in format_trace_stats(azure_stats)
    assert trace_stats_command(plain, None, None)["span_s"] == 2.0
    with pytest.raises(InputError, match="missing column"):
        trace_stats_command(azure, "csv", None)
    with pytest.raises(InputError, match="--format 'parquet'"):
        trace_stats_command(azure, "parquet", None)
    with pytest.raises(InputError, match="--block-size must be >= 1"):
        trace_stats_command(mooncake, None, 0)


# Real traces


@needs_data
def test_real_traces_look_sane() -> None:
    conversation = load_trace(DATA / "mooncake_conversation_trace.jsonl", _config())
    assert len(conversation) == 12031 and conversation.span_s == pytest.approx(3536.999)
    expected = {
        "mooncake_conversation_trace.jsonl": 12031,
        "mooncake_synthetic_trace.jsonl": 3993,
        "AzureLLMInferenceTrace_conv.csv": 19366,
        "AzureLLMInferenceTrace_code.csv": 8819,
    }
    for name, count in expected.items():
        stats = trace_stats_command(DATA / name, None, 16)
        assert stats["requests"] == count and stats["skipped_lines"] == 0
        assert stats["rate_per_s"] > 0 and stats["interarrival_cv"] > 0
        assert 1 <= stats["prompt_tokens"]["p50"] <= stats["prompt_tokens"]["p99"]
        if name.startswith("mooncake"):
            assert 0.3 < stats["infinite_cache_hit_ratio"] < 0.7
            assert stats["unique_blocks"] > 100_000
        else:
            assert stats["infinite_cache_hit_ratio"] is None


@needs_data
@pytest.mark.parametrize("block_size", [16, 512])
def test_one_infinite_cache_reaches_the_theoretical_hit_ratio(block_size: int) -> None:
    """One replica with room for everything, serving one request at a time in trace order,
    caches exactly what the trace's statistics say an infinite cache would."""
    path = DATA / "mooncake_conversation_trace.jsonl"
    config = {"path": str(path), "format": "mooncake", "end_s": 400}
    scenario = Scenario.model_validate(
        {
            "name": "infinite",
            "duration_s": 1e9,
            "drain_s": 0,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {
                        "p": {
                            "max_num_seqs": 1,
                            "block_size": block_size,
                            "kv_capacity_tokens": 10**9,
                        }
                    },
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [{"name": "replay", "account": "a", "model": "m", "trace": config}],
        }
    )
    requests = simulate(scenario).requests
    assert (requests["status"].to_numpy() == 200).all()
    simulated = (
        requests["cached_tokens"].to_numpy().sum() / requests["prompt_tokens"].to_numpy().sum()
    )
    trace = load_trace(path, TraceConfig.model_validate(config))
    assert len(trace) == requests.num_rows > 1000
    assert simulated == infinite_cache_hit_ratio(trace, block_size)


def test_a_run_reports_the_bad_lines_it_skipped(tmp_path: Path) -> None:
    good = [json.dumps(_record(i * 100, 100)) for i in range(3)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([good[0], "{not json", good[1], '{"timestamp": 1}', good[2]]))
    trace = {"path": str(path), "format": "mooncake", "on_bad_line": "skip"}
    scenario = Scenario.model_validate(
        {
            "name": "skips",
            "duration_s": 60,
            "models": {"m": {"architecture": "llama-3.1-8b", "pools": {"p": {}}}},
            "accounts": [{"name": "a"}],
            "traffic": [{"name": "replay", "account": "a", "model": "m", "trace": trace}],
        }
    )
    report = run_scenario(scenario, tmp_path / "out", plots=False)
    assert report.requests == 3
    assert report.summary["trace_lines_skipped"] == {"replay": 2}
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["trace_lines_skipped"] == {"replay": 2}
