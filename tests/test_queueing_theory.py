"""The queueing core against theory: M/M/c waiting times (Erlang C) and Little's law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import slot_scenario
from scipy import stats

from sim.engine import simulate
from sim.results.timeseries import POOL_LEVEL


def erlang_c_wait_s(servers: int, arrival_rate: float, mean_service_s: float) -> float:
    """Mean time in queue of an M/M/c queue (Erlang C formula)."""
    offered = arrival_rate * mean_service_s
    rho = offered / servers
    below = sum(offered**k / math.factorial(k) for k in range(servers))
    top = offered**servers / (math.factorial(servers) * (1 - rho))
    wait_probability = top / (below + top)
    return wait_probability * mean_service_s / (servers * (1 - rho))


def fewest_servers(arrival_rate: float, mean_service_s: float, target_wait_s: float) -> int:
    """The fewest servers of an M/M/c queue whose mean time in queue is at most the target."""
    servers = math.floor(arrival_rate * mean_service_s) + 1
    while erlang_c_wait_s(servers, arrival_rate, mean_service_s) > target_wait_s:
        servers += 1
    return servers


def _mean_wait_s(servers: int, rate: float, seed: int, duration_s: float) -> float:
    result = simulate(slot_scenario(servers, rate, 1.0, duration_s, seed))
    arrival = result.requests["arrival_s"].to_numpy()
    queue = result.requests["queue_s"].to_numpy()
    return float(queue[arrival >= duration_s * 0.1].mean())


@pytest.mark.slow
@pytest.mark.parametrize(("servers", "rho"), [(1, 0.5), (1, 0.8), (2, 0.7), (4, 0.6), (8, 0.85)])
def test_mmc_mean_wait_matches_erlang_c(servers: int, rho: float) -> None:
    rate = rho * servers  # mean service 1 s
    replications = 10
    duration_s = 20_000 / rate  # about 20,000 customers each
    waits = np.array(
        [_mean_wait_s(servers, rate, seed, duration_s) for seed in range(replications)]
    )
    theory = erlang_c_wait_s(servers, rate, 1.0)
    # 99% Student-t interval over independent replications (fixed seeds: deterministic).
    half = stats.t.ppf(0.995, replications - 1) * waits.std(ddof=1) / math.sqrt(replications)
    assert abs(waits.mean() - theory) <= half, (waits.mean(), theory, half)


def test_erlang_c_formula_known_value() -> None:
    # M/M/1 at rho 0.5: Wq = rho / (mu - lambda) = 0.5 / 0.5 = 1 s.
    assert erlang_c_wait_s(1, 0.5, 1.0) == pytest.approx(1.0)


def test_littles_law_on_outputs() -> None:
    """Time-average number in system (sampled levels) = throughput x mean time in system."""
    duration_s = 20_000.0
    scenario = slot_scenario(4, 3.0, 1.0, duration_s, seed=7, sample_interval_s=0.5)
    result = simulate(scenario)
    req = {
        n: result.requests[n].to_numpy(zero_copy_only=False) for n in result.requests.column_names
    }
    ts = {
        n: result.timeseries[n].to_numpy(zero_copy_only=False)
        for n in result.timeseries.column_names
    }
    warmup_s = scenario.warmup_s
    window = (ts["replica"] == POOL_LEVEL) & (ts["t_s"] > warmup_s)
    in_system = (ts["running"] + ts["waiting"])[window].mean()
    measured = req["arrival_s"] >= warmup_s
    throughput = measured.sum() / (duration_s - warmup_s)
    sojourn = req["e2e_s"][measured].mean()
    assert in_system == pytest.approx(throughput * sojourn, rel=0.03)
    # and both agree with M/M/4 theory: L = lambda (Wq + 1/mu)
    assert in_system == pytest.approx(3.0 * (erlang_c_wait_s(4, 3.0, 1.0) + 1.0), rel=0.08)
