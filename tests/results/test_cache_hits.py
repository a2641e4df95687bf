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
