"""Trace files: formats, bad lines, windows and scaling, block re-chunking, statistics, replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.engine import simulate
from sim.errors import InputError
from sim.scenario import Scenario
from sim.workload.chains import block_ids, trace_runs
from sim.workload.trace_stats import infinite_cache_hit_ratio, trace_stats
from sim.workload.traces import TraceConfig, load_trace

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "traces"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the repo")


def _mooncake(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _config(fmt: str = "mooncake", **extra: object) -> TraceConfig:
    return TraceConfig.model_validate({"path": "x", "format": fmt, **extra})


def test_mooncake_loads_sorted_and_rebased(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path,
        [
            {"timestamp": 3000, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]},
            {"timestamp": 1000, "input_length": 100, "output_length": 7, "hash_ids": [0]},
        ],
    )
    trace = load_trace(path, _config())
    assert trace.arrival_s.tolist() == [0.0, 2.0]
    assert trace.prompt_tokens.tolist() == [100, 600]
    assert trace.block_ids == [[0], [0, 1]]
    fast = load_trace(path, _config(time_scale=4))
    assert fast.arrival_s.tolist() == [0.0, 0.5]


def test_bad_lines_name_file_line_and_field(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path,
        [
            {"timestamp": 0, "input_length": 100, "output_length": 5, "hash_ids": [0]},
            {"timestamp": 5, "input_length": "abc", "output_length": 5, "hash_ids": [0]},
            {"timestamp": 9, "input_length": 100, "output_length": 5, "hash_ids": [0]},
        ],
    )
    with pytest.raises(InputError, match=rf"^{path}:2: input_length: must be an integer >= 1"):
        load_trace(path, _config())
    trace = load_trace(path, _config(on_bad_line="skip"))
    assert len(trace) == 2 and trace.skipped_lines == 1
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], "{not json"]) + "\n")
    with pytest.raises(InputError, match=r":3: \(line\): not valid JSON"):
        load_trace(path, _config())


def test_azure_and_plain_csv(tmp_path: Path) -> None:
    azure = tmp_path / "a.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    trace = load_trace(azure, _config("azure"))
    assert trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-6)
    assert trace.block_ids is None
    plain = tmp_path / "p.csv"
    plain.write_text("t,in,out\n500,10,20\n0,30,40\n")
    config = _config(
        "csv",
        time_unit="ms",
        columns={"arrival_s": "t", "prompt_tokens": "in", "output_tokens": "out"},
    )
    trace = load_trace(plain, config)
    assert trace.arrival_s.tolist() == [0.0, 0.5] and trace.prompt_tokens.tolist() == [30, 10]
    with pytest.raises(InputError, match="missing column"):
        load_trace(plain, _config("csv"))


def test_window_and_loop(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path,
        [
            {"timestamp": 1000 * t, "input_length": 10, "output_length": 1, "hash_ids": [t]}
            for t in range(10)
        ],
    )
    window = load_trace(path, _config(start_s=2, end_s=5))
    assert window.arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert window.prompt_tokens.size == 3 and window.block_ids == [[2], [3], [4]]
    looped = window.repeated_until(10.0)
    assert looped.arrival_s.tolist()[:6] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert looped.block_ids is not None and looped.block_ids[3] == [2]  # content replays


@given(
    shared=st.integers(0, 6),
    extra_a=st.integers(0, 5),
    extra_b=st.integers(0, 5),
    to_size=st.sampled_from([16, 24, 512, 1024, 100]),
)
def test_rechunking_keeps_prefix_identity(
    shared: int, extra_a: int, extra_b: int, to_size: int
) -> None:
    """Two prompts share pool blocks exactly as far as their shared trace blocks reach."""
    trace_block = 512
    a_ids = list(range(shared)) + [100 + i for i in range(extra_a)]
    b_ids = list(range(shared)) + [200 + i for i in range(extra_b)]
    a_tokens, b_tokens = 512 * len(a_ids), 512 * len(b_ids)
    a = block_ids(trace_runs("s", a_ids, trace_block, a_tokens, to_size))
    b = block_ids(trace_runs("s", b_ids, trace_block, b_tokens, to_size))
    assert len(a) == a_tokens // to_size and len(b) == b_tokens // to_size
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    # A pool block is shared iff its last token lies within the shared trace blocks (unless
    # both prompts continue identically, which distinct ids rule out).
    expected = min(shared * trace_block // to_size, len(a), len(b))
    assert common == expected
    assert len(set(a)) == len(a)  # ids are unique within a prompt


def test_infinite_cache_hit_ratio_by_hand() -> None:
    from sim.workload.traces import Trace

    trace = Trace(
        arrival_s=np.array([0.0, 1.0, 2.0]),
        prompt_tokens=np.array([1024, 1536, 1024]),
        output_tokens=np.array([1, 1, 1]),
        block_ids=[[1, 2], [1, 2, 3], [1, 9]],
        block_size=512,
        path="by-hand",
        skipped_lines=0,
    )
    # Request 2 reuses blocks 1 and 2 (1,024 tokens); request 3 reuses block 1 (512 tokens);
    # request 1 would reuse nothing. (1,024 + 512) / (1,024 + 1,536 + 1,024) = 0.4286.
    assert infinite_cache_hit_ratio(trace, 512) == pytest.approx(1536 / 3584)
    stats = trace_stats(trace)
    assert stats["requests"] == 3 and stats["unique_blocks"] == 4
    assert stats["rate_per_s"] == pytest.approx(1.0)


@needs_data
def test_real_traces_load() -> None:
    trace = load_trace(DATA / "mooncake_conversation_trace.jsonl", _config())
    assert len(trace) == 12031 and trace.span_s == pytest.approx(3536.999)
    azure = load_trace(DATA / "AzureLLMInferenceTrace_code.csv", _config("azure"))
    assert len(azure) == 8819
    assert trace_stats(trace)["infinite_cache_hit_ratio"] > 0.3


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
