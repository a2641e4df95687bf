"""The time series' sampling intervals: [t_s - period, t_s), whatever else happens at t_s."""

from __future__ import annotations

from sim.engine import simulate
from sim.results.timeseries import POOL_LEVEL
from sim.scenario import Scenario


def test_a_request_admitted_at_a_sample_time_counts_in_the_next_interval() -> None:
    """Arrivals every second on the second, admitted at once by an idle replica, sampled every
    second: each interval [k - 1, k) admits exactly the request that arrived at k - 1."""
    scenario = Scenario.model_validate(
        {
            "name": "ties",
            "duration_s": 20,
            "sample_interval_s": 1,
            "models": {"m": {"architecture": "llama-3.1-8b", "pools": {"p": {"replicas": 1}}}},
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "constant", "rate_per_s": 1},
                    "prompt_tokens": {"dist": "constant", "value": 100},
                    "output_tokens": {"dist": "constant", "value": 5},
                }
            ],
        }
    )
    result = simulate(scenario)
    assert result.requests["admitted_s"].to_pylist() == [float(k) for k in range(20)]
    ts = result.timeseries.to_pydict()
    pool = [
        (t_s, prompt)
        for t_s, replica, prompt in zip(ts["t_s"], ts["replica"], ts["prompt_tokens"], strict=True)
        if replica == POOL_LEVEL
    ]
    assert pool == [(float(k), 100) for k in range(1, 21)]
