"""The summary, the printed table and the plots of a run, including runs that measure nothing."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import slot_scenario
from rich.console import Console

from sim import cli
from sim.engine import simulate
from sim.perf.config import RooflinePerf
from sim.perf.roofline import build_batch_time_model
from sim.report.plots import write_plots
from sim.results.summary import generated_tps_per_request, summarize
from sim.scenario import Scenario


def _all_before_warmup() -> Scenario:
    """100 requests at 5/s arrive in the first 20 s or so; warm-up lasts 120 s."""
    data = slot_scenario(2, 5.0, 0.2, 600, seed=1).model_dump(by_alias=True)
    data["warmup_s"] = 120
    data["traffic"][0]["max_requests"] = 100
    data["traffic"][0]["tier_mix"] = {"standard": 0.5, "batch": 0.5}
    return Scenario.model_validate(data)


def test_a_run_that_measures_nothing_has_a_summary_a_table_and_plots(tmp_path: Path) -> None:
    scenario = _all_before_warmup()
    result = simulate(scenario)
    assert result.requests.num_rows == 100
    summary = summarize(result.requests, result.timeseries, scenario.warmup_s, 600)
    assert summary["requests_measured"] == 0
    # Every group that had requests is still there, with zero counts and no statistics.
    assert set(summary["models"]["m"]["tiers"]) == {"standard", "batch"}
    for group in (summary["models"]["m"]["all"], summary["traffic"]["t"]):
        assert group["requests"] == 0 and group["by_status"] == {}
        assert group["throughput"]["requests_per_s"] == 0.0
        assert group["ttft_s"] == {"count": 0}
    console = Console(record=True, width=200)
    original, cli.out = cli.out, console
    try:
        cli._print_summary(summary)
    finally:
        cli.out = original
    assert "nothing measured" in console.export_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no artists" legend warnings either
        paths = write_plots(result.requests, result.timeseries, scenario.warmup_s, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_tier_whose_requests_all_arrived_in_warmup_is_reported_empty() -> None:
    scenario = slot_scenario(2, 5.0, 0.2, 100, seed=2)
    result = simulate(scenario)
    tier = result.requests["tier"].to_numpy(zero_copy_only=False).copy()
    early = result.requests["arrival_s"].to_numpy() < 5.0
    tier[early] = "batch"  # pretend the first arrivals were Batch, and only those
    requests = result.requests.set_column(
        result.requests.column_names.index("tier"), "tier", [tier.tolist()]
    )
    summary = summarize(requests, result.timeseries, 10.0, 100)
    tiers = summary["models"]["m"]["tiers"]
    assert tiers["batch"]["requests"] == 0
    assert tiers["standard"]["requests"] == summary["requests_measured"] > 0


def test_utilisation_by_replica_shows_a_replica_that_gets_no_traffic() -> None:
    """Affinity on one user's key sends everything to one replica of two: that replica's
    busy share of slots is the offered load per slot (arrival rate x mean service / slots),
    the other's is 0, and the pool's utilisation is their mean."""
    rate, mean_service_s, slots, duration_s = 1.0, 1.0, 2, 4000.0
    data = slot_scenario(slots, rate, mean_service_s, duration_s, seed=3).model_dump(by_alias=True)
    data["models"]["m"]["pools"]["p"]["replicas"] = 2
    data["models"]["m"]["routing"] = {"policy": "affinity", "bounded_load": 1000}  # no spills
    data["traffic"][0]["affinity"] = "user"
    scenario = Scenario.model_validate(data)
    result = simulate(scenario)
    summary = summarize(result.requests, result.timeseries, scenario.warmup_s, duration_s)
    (pool,) = summary["pools"]
    busy, idle = sorted(pool["utilisation_by_replica"], reverse=True)
    assert idle == 0.0
    # Busy slot-seconds are the sum of ~3,600 exponential service times in the window: relative
    # standard error sqrt(2 / 3600) = 2.4%; 4 standard errors.
    assert busy == pytest.approx(rate * mean_service_s / slots, rel=0.095)
    assert pool["utilisation"] == pytest.approx((busy + idle) / 2)
    assert sorted(pool["requests_by_replica"]) == [0, summary["requests_measured"]]


def test_under_overload_completed_throughput_is_capacity_and_arrived_is_offered_load() -> None:
    """Two exponential slots (capacity 2 requests/s) offered 4 requests/s: the queue never
    empties after warm-up, so completions in the window are a Poisson process at capacity;
    the backlog is all served in the drain, so served arrivals count at the arrival rate."""
    slots, mean_service_s, rate, duration_s = 2, 1.0, 4.0, 2000.0
    scenario = slot_scenario(slots, rate, mean_service_s, duration_s, seed=5)
    result = simulate(scenario)
    summary = summarize(result.requests, result.timeseries, scenario.warmup_s, duration_s)
    throughput = summary["models"]["m"]["all"]["throughput"]
    window_s = duration_s - scenario.warmup_s
    capacity = slots / mean_service_s

    def four_sd(per_s: float) -> float:  # of a Poisson count's rate over the window
        return 4 * math.sqrt(per_s * window_s) / window_s

    assert throughput["completed_requests_per_s"] == pytest.approx(capacity, abs=four_sd(capacity))
    assert throughput["requests_per_s"] == pytest.approx(rate, abs=four_sd(rate))
    # Constant lengths: tokens follow requests exactly (10 generated tokens each).
    assert throughput["completed_completion_tokens_per_s"] == pytest.approx(
        10 * throughput["completed_requests_per_s"]
    )


def test_generated_tps_per_request_is_the_inverse_of_each_tpot() -> None:
    """Per request 1 / TPOT, then the median and mean of those (not 1 / mean TPOT): TPOTs of
    10, 20 and 40 ms are 100, 50 and 25 tokens/s, median 50, mean 58.33; a one-token answer
    (no TPOT) and a slot model's zero TPOT count for nothing."""
    tpot_s = np.array([0.02, np.nan, 0.01, 0.0, 0.04])
    assert generated_tps_per_request(tpot_s) == {
        "generated_tps_per_request_p50": pytest.approx(50.0),
        "generated_tps_per_request_mean": pytest.approx(175 / 3),
    }
    assert generated_tps_per_request(np.array([np.nan, 0.0])) == {
        "generated_tps_per_request_p50": None,
        "generated_tps_per_request_mean": None,
    }


@pytest.mark.parametrize("draft_tokens", [0, 3])
def test_a_lone_request_decodes_at_the_speed_of_its_decode_line(draft_tokens: int) -> None:
    """One request alone on a replica: 1,000 prompt tokens, 101 generated. Its 100 decode steps
    (context 1,001 to 1,100) each take a + b x context on the pool's decode line (with
    speculation, the time per emitted token), so its TPOT is a + b x 1,050.5 and the pool's
    generated tokens/s per request, median and mean, is the inverse."""
    perf = {"model": "roofline", "draft_tokens": draft_tokens, "acceptance_rate": 0.8}
    data = slot_scenario(1, 1.0, 1.0, 10, seed=4).model_dump(by_alias=True)
    data["warmup_s"] = 0
    data["models"]["m"]["pools"]["p"] = {"gpu": "h100", "perf": perf}
    data["traffic"][0] |= {
        "max_requests": 1,
        "prompt_tokens": {"dist": "constant", "value": 1000},
        "output_tokens": {"dist": "constant", "value": 101},
    }
    scenario = Scenario.model_validate(data)
    result = simulate(scenario)
    (a, b), *_ = build_batch_time_model(
        "llama-3.1-8b", "h100", 1, RooflinePerf(**perf)
    ).decode_lines(1)
    expected = 1 / (a + b * 1050.5)
    pool = summarize(result.requests, result.timeseries, 0, 10)["pools"][0]
    assert pool["generated_tps_per_request_p50"] == pytest.approx(expected, rel=1e-9)
    assert pool["generated_tps_per_request_mean"] == pytest.approx(expected, rel=1e-9)
