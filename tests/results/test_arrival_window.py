"""Rates and utilisation are over the window in which arrivals happened: when max_requests
stops every source early, dividing by duration_s understated them (the reference workload
reported 1.67 arrivals/s instead of 18.94)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import slot_scenario

from sim.engine import simulate
from sim.results.summary import summarize


def _summary(**extra: Any) -> dict[str, Any]:
    scenario = slot_scenario(1, 10.0, 0.5, 100.0, 3, sample_interval_s=1.0, warmup_s=0.0)
    data = scenario.model_dump(by_alias=True)
    data["traffic"][0]["arrivals"] = {"process": "constant", "rate_per_s": 10.0}
    data["traffic"][0].update(extra)
    scenario = type(scenario).model_validate(data)
    out = simulate(scenario)
    return summarize(
        out.requests, out.timeseries, scenario.warmup_s, scenario.duration_s, out.arrivals_end_s
    )


def test_rates_are_over_the_arrivals_when_max_requests_stops_them() -> None:
    summary = _summary(max_requests=200)  # arrivals at 0, 0.1, ..., 19.9 s
    assert summary["arrivals_end_s"] == pytest.approx(19.9)
    group = summary["models"]["m"]["all"]
    assert group["requests"] == 200
    assert group["throughput"]["requests_per_s"] == pytest.approx(200 / 19.9)
    # One slot, 0.5 s each, 10 arrivals a second: the replica is busy the whole window.
    assert summary["pools"][0]["utilisation"] == pytest.approx(1.0, abs=0.06)


def test_without_an_early_stop_the_window_is_duration() -> None:
    summary = _summary()
    assert summary["arrivals_end_s"] == 100.0 and summary["measured_window_s"] == 100.0
    assert summary["models"]["m"]["all"]["throughput"]["requests_per_s"] == pytest.approx(
        summary["models"]["m"]["all"]["requests"] / 100.0
    )
