"""cache_hits.parquet: the cache hit ratio per (model, tier, traffic source) over time agrees
with the per-pool time series interval by interval and with the summary's totals."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from helpers import on_the_second_scenario, slot_scenario

from sim.engine import RunOutput, simulate
from sim.results.cache_hits import cache_hits_over_time
from sim.results.summary import summarize
from sim.results.timeseries import POOL_LEVEL
from sim.scenario import Scenario

DURATION_S = 400.0


def _scenario() -> Scenario:
    """Chat sessions with shared system prompts (cache hits) and an API source on one model,
    another API source on a second model; arrivals stop well before the end, so every request
    is admitted, served and measured."""
    api = {
        "account": "x",
        "arrivals": {"process": "poisson", "rate_per_s": 3.0},
        "prompt_tokens": {"dist": "uniform", "low": 10, "high": 2000},
        "output_tokens": {"dist": "uniform", "low": 1, "high": 300},
        "max_requests": 400,
    }
    pool = {"replicas": 2, "kv_capacity_tokens": 100_000}
    return Scenario.model_validate(
        {
            "name": "cache-hits",
            "seed": 11,
            "duration_s": DURATION_S,
            "sample_interval_s": 4,
            "models": {
                "a": {"architecture": "llama-3.1-8b", "pools": {"p": pool}},
                "b": {"architecture": "llama-3.1-8b", "pools": {"q": pool}},
            },
            "accounts": [{"name": "x", "users": 20}],
            "traffic": [
                {
                    "name": "chat",
                    "account": "x",
                    "model": "a",
                    "arrivals": {"process": "poisson", "rate_per_s": 1.0},
                    "sessions": {
                        "turns": {"dist": "uniform", "low": 2, "high": 6},
                        "think_time_s": {"dist": "exponential", "mean_s": 5},
                        "system_prompts": 3,
                    },
                    "prompt_tokens": {"dist": "lognormal", "median": 200, "sigma": 0.5},
                    "output_tokens": {"dist": "lognormal", "median": 100, "sigma": 0.5},
                    "tier_mix": {"standard": 0.7, "priority": 0.3},
                    "max_requests": 500,
                },
                {**api, "name": "api-a", "model": "a", "tier_mix": {"standard": 0.5, "batch": 0.5}},
                {**api, "name": "api-b", "model": "b"},
            ],
        }
    )


@pytest.fixture(scope="module")
def run() -> RunOutput:
    return simulate(_scenario())


def test_every_group_and_interval_sums_to_the_pool_time_series(run: RunOutput) -> None:
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    by_interval: dict[tuple[float, str], list[int]] = defaultdict(lambda: [0, 0])
    for t_s, model, prompt, cached, ratio in zip(
        hits["t_s"],
        hits["model"],
        hits["prompt_tokens"],
        hits["cached_tokens"],
        hits["cache_hit_ratio"],
        strict=True,
    ):
        assert prompt > 0 and ratio == cached / prompt  # only groups with admissions
        by_interval[t_s, model][0] += prompt
        by_interval[t_s, model][1] += cached
    ts = run.timeseries.to_pydict()
    pools = {
        (t_s, model): [prompt, cached]
        for t_s, model, replica, prompt, cached in zip(
            ts["t_s"],
            ts["model"],
            ts["replica"],
            ts["prompt_tokens"],
            ts["cached_tokens"],
            strict=True,
        )
        if replica == POOL_LEVEL and prompt
    }
    assert by_interval == pools
    assert len(pools) > 50 and sum(c for _, c in pools.values()) > 0
    assert set(zip(hits["model"], hits["tier"], hits["traffic"], strict=True)) == {
        ("a", "priority", "chat"),
        ("a", "standard", "chat"),
        ("a", "batch", "api-a"),
        ("a", "standard", "api-a"),
        ("b", "standard", "api-b"),
    }


def test_totals_are_the_summarys_per_tier_and_per_traffic_totals(run: RunOutput) -> None:
    status = run.requests["status"].to_numpy()
    admitted_s = run.requests["admitted_s"].to_numpy()
    assert (status == 200).all() and (admitted_s < DURATION_S).all()  # all counted in both
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    summary = summarize(run.requests, run.timeseries, 0.0, DURATION_S)
    tiers: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(2, np.int64))
    traffic: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(2, np.int64))
    for model, tier, source, prompt, cached in zip(
        hits["model"],
        hits["tier"],
        hits["traffic"],
        hits["prompt_tokens"],
        hits["cached_tokens"],
        strict=True,
    ):
        tiers[model, tier] += (prompt, cached)
        traffic[source] += (prompt, cached)
    expected_tiers = {
        (model, tier): [group["prompt_tokens"], group["cached_tokens"]]
        for model, data in summary["models"].items()
        for tier, group in data["tiers"].items()
    }
    assert {k: v.tolist() for k, v in tiers.items()} == expected_tiers
    expected_traffic = {
        name: [group["prompt_tokens"], group["cached_tokens"]]
        for name, group in summary["traffic"].items()
    }
    assert {k: v.tolist() for k, v in traffic.items()} == expected_traffic


def test_an_admission_at_a_sample_time_counts_in_the_interval_it_opens() -> None:
    run = simulate(on_the_second_scenario())
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    assert list(zip(hits["t_s"], hits["prompt_tokens"], strict=True)) == [
        (float(k), 100) for k in range(1, 21)
    ]


def test_slot_models_count_admitted_prompt_tokens_none_cached() -> None:
    scenario = slot_scenario(2, 3.0, 0.5, 200, seed=4)
    run = simulate(scenario)
    ts = run.timeseries.to_pydict()
    pool = {
        t_s: (prompt, cached)
        for t_s, replica, prompt, cached in zip(
            ts["t_s"], ts["replica"], ts["prompt_tokens"], ts["cached_tokens"], strict=True
        )
        if replica == POOL_LEVEL and prompt
    }
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    assert pool == dict(
        zip(
            hits["t_s"], zip(hits["prompt_tokens"], hits["cached_tokens"], strict=True), strict=True
        )
    )
    assert len(pool) > 50 and set(hits["cache_hit_ratio"]) == {0.0}


def test_hit_ratio_by_turn_agrees_between_the_table_and_the_summary(run: RunOutput) -> None:
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    summary = summarize(run.requests, run.timeseries, 0.0, DURATION_S)
    sums: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(2, np.int64))
    for source, turn, prompt, cached in zip(
        hits["traffic"], hits["turn"], hits["prompt_tokens"], hits["cached_tokens"], strict=True
    ):
        assert (turn == 0) == source.startswith("api")  # turns are for sessions only
        if source == "chat":
            sums[turn] += (prompt, cached)
    by_turn = summary["traffic"]["chat"]["cache_hit_ratio_by_turn"]
    assert by_turn == {str(t): sums[t][1] / sums[t][0] for t in sorted(sums)}
    assert list(by_turn) == ["1", "2", "3", "4", "5", "6"]  # sessions of 2 to 6 turns
    assert summary["traffic"]["api-a"]["cache_hit_ratio_by_turn"] == {}


def test_pinned_sessions_reach_the_block_granular_ideal_turn_by_turn() -> None:
    """Constant lengths: system prompt 320, message 40, answer 30 tokens, 16-token blocks, 24
    turns. Turn k resends 360 + 70 (k - 1) tokens, of which every full block before the new
    message was cached by turn k - 1; turns from 20 on share the last bucket."""
    scenario = Scenario.model_validate(
        {
            "name": "turns",
            "seed": 2,
            "duration_s": 400,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 2}},
                    "routing": {"policy": "affinity", "bounded_load": 1000},
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "chat",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 0.2},
                    "sessions": {
                        "turns": {"dist": "constant", "value": 24},
                        "think_time_s": {"dist": "constant", "value_s": 1.0},
                        "system_prompt_tokens": {"dist": "constant", "value": 320},
                    },
                    "prompt_tokens": {"dist": "constant", "value": 40},
                    "output_tokens": {"dist": "constant", "value": 30},
                }
            ],
        }
    )
    run = simulate(scenario)
    turn = run.requests["turn"].to_numpy()[run.requests["status"].to_numpy() == 200]
    counts = {k: int((turn == k).sum()) for k in range(1, 25)}
    by_turn = summarize(run.requests, run.timeseries, 0.0, 400)["models"]["m"]["all"][
        "cache_hit_ratio_by_turn"
    ]
    assert list(by_turn) == [*map(str, range(1, 20)), "20+"]
    prompt = {k: 360 + 70 * (k - 1) for k in range(1, 25)}
    ideal = {k: (prompt[k] - 40) // 16 * 16 for k in range(2, 25)}
    for k in range(2, 20):
        assert by_turn[str(k)] == ideal[k] / prompt[k]
    late = range(20, 25)
    assert by_turn["20+"] == pytest.approx(
        sum(counts[k] * ideal[k] for k in late) / sum(counts[k] * prompt[k] for k in late)
    )
    assert by_turn["1"] <= 320 / 360  # at most the shared system prompt
    hits = cache_hits_over_time(run.requests, run.timeseries).to_pydict()
    assert set(hits["turn"]) == set(range(1, 21))


def test_the_turn_plot_draws_each_runs_ratios_and_the_stated_figures(run: RunOutput) -> None:
    from sim.report.plots import cache_hit_by_turn

    hits = cache_hits_over_time(run.requests, run.timeseries)
    summary = summarize(run.requests, run.timeseries, 0.0, DURATION_S)
    by_turn = summary["models"]["a"]["all"]["cache_hit_ratio_by_turn"]
    figure = cache_hit_by_turn({"affinity": hits, "again": hits})
    first, second, stated = figure.axes[0].get_lines()
    assert first.get_label() == "affinity" and second.get_label() == "again"
    assert list(first.get_xdata()) == [int(t) for t in by_turn]
    assert np.allclose(first.get_ydata(), [100 * r for r in by_turn.values()])
    assert list(zip(stated.get_xdata(), stated.get_ydata(), strict=True)) == [(8, 77.0), (20, 95.0)]
