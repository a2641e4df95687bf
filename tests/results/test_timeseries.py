"""The time series' sampling intervals: [t_s - period, t_s), whatever else happens at t_s."""

from __future__ import annotations

from helpers import on_the_second_scenario

from sim.engine import simulate
from sim.results.timeseries import POOL_LEVEL


def test_a_request_admitted_at_a_sample_time_counts_in_the_next_interval() -> None:
    """Each interval [k - 1, k) admits exactly the request that arrived at k - 1."""
    result = simulate(on_the_second_scenario())
    assert result.requests["admitted_s"].to_pylist() == [float(k) for k in range(20)]
    ts = result.timeseries.to_pydict()
    pool = [
        (t_s, prompt)
        for t_s, replica, prompt in zip(ts["t_s"], ts["replica"], ts["prompt_tokens"], strict=True)
        if replica == POOL_LEVEL
    ]
    assert pool == [(float(k), 100) for k in range(1, 21)]
