"""Fleet dynamics: replica lifecycle, failures, rolling updates and autoscaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import tables_equal

from sim.engine import RunOutput, Simulation, simulate
from sim.results.summary import summarize
from sim.results.timeseries import POOL_LEVEL
from sim.routing import POLICIES
from sim.scenario import Scenario

RESTART_S = 40.0


def _scenario(
    pool: dict[str, Any] | None = None,
    policy: str = "least_loaded",
    duration_s: float = 300,
    rate_per_s: float = 2.0,
    **extra: Any,
) -> Scenario:
    """Chat sessions on a pool of four replicas (small KV, so caches matter)."""
    return Scenario.model_validate(
        {
            "name": "fleet",
            "seed": 5,
            "duration_s": duration_s,
            "sample_interval_s": 5,
            "drain_s": 600,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 4, "kv_capacity_tokens": 100_000, **(pool or {})}},
                    "routing": {"policy": policy},
                }
            },
            "accounts": [{"name": "a", "users": 20}],
            "traffic": [
                {
                    "name": "chat",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": rate_per_s / 4},
                    "sessions": {
                        "turns": {"dist": "uniform", "low": 2, "high": 6},
                        "think_time_s": {"dist": "exponential", "mean_s": 5},
                        "system_prompts": 2,
                    },
                    "prompt_tokens": {"dist": "lognormal", "median": 300, "sigma": 0.5},
                    "output_tokens": {"dist": "lognormal", "median": 150, "sigma": 0.5},
                },
                {
                    "name": "api",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": rate_per_s},
                    "prompt_tokens": {"dist": "uniform", "low": 10, "high": 1500},
                    "output_tokens": {"dist": "uniform", "low": 1, "high": 300},
                    "affinity": "user",
                },
            ],
            **extra,
        }
    )


def _run_logged(scenario: Scenario) -> tuple[RunOutput, list[tuple[float, int, str]]]:
    simulation = Simulation(scenario)
    log: list[tuple[float, int, str]] = []
    simulation.pools[0].log = log
    return simulation.run(), log


def _columns(table: pa.Table, *names: str) -> list[np.ndarray]:
    return [table[name].to_numpy(zero_copy_only=False) for name in names]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_fleet_settings_that_never_act_leave_the_records_as_they_were(policy: str) -> None:
    plain = simulate(_scenario(policy=policy, duration_s=120))
    inert = {
        "failures": {"scheduled": [{"at_s": 10_000, "replica": 1}], "restart_s": 5},
        "rolling_update": {"at_s": 10_000},
        "autoscaling": {"policy": "utilisation", "min_replicas": 4, "max_replicas": 4},
    }
    quiet = simulate(_scenario(inert, policy=policy, duration_s=120))
    assert tables_equal(plain.requests, quiet.requests)
    assert set(_pool_rows(quiet.timeseries)["replicas_held"].to_pylist()) == {4}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_failed_replica_answers_503_for_all_it_held_and_gets_nothing_until_it_serves(
    policy: str,
) -> None:
    failures = {"scheduled": [{"at_s": 100, "replica": 2}], "restart_s": RESTART_S}
    # Busy enough that replica 2 holds attempts when it fails, whatever the routing.
    scenario = _scenario({"failures": failures}, policy=policy, duration_s=200, rate_per_s=10.0)
    result, log = _run_logged(scenario)
    assert log[:2] == [(100.0, 2, "starting"), (140.0, 2, "serving")]
    status, replica, arrival, finished = _columns(
        result.requests, "status", "replica", "arrival_s", "finished_s"
    )
    lost = status == 503
    assert lost.sum() > 0
    assert (replica[lost] == 2).all() and (finished[lost] == 100.0).all()
    assert (arrival[lost] <= 100.0).all()
    # Every other attempt was answered; none was routed to replica 2 while it restarted.
    assert set(status[~lost]) == {200}
    routed = arrival[replica == 2]
    assert not ((routed >= 100.0) & (routed < 100.0 + RESTART_S)).any()
    assert ((replica == 2) & (arrival >= 100.0 + RESTART_S)).any()
    # Every lost attempt is retried by its client (after a backoff) and the retry is served.
    attempt, logical = _columns(result.requests, "attempt", "logical_id")
    retried = {
        (int(lid), int(n)) for lid, n, ok in zip(logical, attempt, status == 200, strict=True) if ok
    }
    for lid, n in zip(logical[lost], attempt[lost], strict=True):
        assert (int(lid), int(n) + 1) in retried


def test_failures_are_drawn_per_replica_and_leave_the_workload_alone() -> None:
    quiet = simulate(_scenario(duration_s=200)).requests
    result, log = _run_logged(
        _scenario({"failures": {"mtbf_s": 150, "restart_s": RESTART_S}}, duration_s=200)
    )
    failed = [(t, r) for t, r, state in log if state == "starting"]
    assert len({r for _, r in failed}) > 1
    again, log_again = _run_logged(
        _scenario({"failures": {"mtbf_s": 150, "restart_s": RESTART_S}}, duration_s=200)
    )
    assert log == log_again and tables_equal(result.requests, again.requests)
    # Open-loop arrivals (the api source) are the same whatever the fleet does (503s of a
    # failed replica are retried: compare the logical requests' first attempts).
    api = [
        table.filter(
            pc.and_(pc.equal(table["traffic"], "api"), pc.equal(table["attempt"], 1))
        ).sort_by("arrival_s")
        for table in (quiet, result.requests)
    ]
    for name in ("arrival_s", "prompt_tokens"):
        assert api[0][name].equals(api[1][name])


def test_a_failed_replica_restarts_with_an_empty_cache() -> None:
    failures = {"scheduled": [{"at_s": 100, "replica": 0}], "restart_s": RESTART_S}
    result, _ = _run_logged(_scenario({"failures": failures}, policy="affinity", duration_s=200))
    ts = result.timeseries
    replica, t_s, cached = _columns(ts, "replica", "t_s", "kv_blocks_cached")
    row = np.flatnonzero((replica == 0) & (t_s == 105.0))
    assert cached[row].tolist() == [0]
    assert cached[(replica == 0) & (t_s == 100.0)][0] > 0


def test_sessions_follow_their_affinity_order_when_a_replica_fails() -> None:
    failures = {"scheduled": [{"at_s": 100, "replica": 1}], "restart_s": RESTART_S}
    plain = simulate(_scenario(policy="affinity", duration_s=200, rate_per_s=0.5)).requests
    failed = simulate(
        _scenario({"failures": failures}, policy="affinity", duration_s=200, rate_per_s=0.5)
    ).requests
    key = pc.equal(plain["traffic"], "chat")
    before = plain.filter(key)
    after = failed.filter(pc.equal(failed["traffic"], "chat"))
    rows = {
        (s, t): r
        for s, t, r in zip(*_columns(before, "session_id", "turn", "replica"), strict=True)
    }
    moved = 0
    for s, t, r, a in zip(
        *_columns(after, "session_id", "turn", "replica", "arrival_s"), strict=True
    ):
        if (s, t) in rows and 100 <= a < 100 + RESTART_S and rows[s, t] == 1:
            assert r != 1
            moved += 1
    assert moved > 0


def test_rolling_update_restarts_every_replica_within_max_unavailable() -> None:
    update = {"at_s": 60, "max_unavailable": 2, "restart_s": 20}
    result, log = _run_logged(_scenario({"rolling_update": update}, duration_s=300))
    restarted = [r for _, r, state in log if state == "starting"]
    assert sorted(restarted) == [0, 1, 2, 3]
    unavailable: set[int] = set()
    for _, replica, state in log:
        if state == "serving":
            unavailable.discard(replica)
        else:
            unavailable.add(replica)
        assert len(unavailable) <= 2
    assert set(result.requests["status"].to_pylist()) == {200}  # drained, not dropped


def _autoscaled(replicas: int, rate_per_s: float, duration_s: float, **scaling: Any) -> Scenario:
    settings = {"min_replicas": 1, "max_replicas": 3, "scale_down_delay_s": 60, **scaling}
    return _scenario(
        {"replicas": replicas, "autoscaling": settings},
        duration_s=duration_s,
        rate_per_s=rate_per_s,
    )


def _pool_rows(table: pa.Table) -> pa.Table:
    return table.filter(pc.equal(table["replica"], POOL_LEVEL))


@pytest.mark.parametrize(
    ("policy", "target"), [("utilisation", 0.3), ("queueing_delay", 0.002), ("kv_use", 0.05)]
)
def test_autoscaling_stays_within_bounds_and_serves_after_cold_start(
    policy: str, target: float
) -> None:
    scenario = _autoscaled(
        1, 3.0, 400, policy=policy, target=target, decision_interval_s=20, cold_start_s=30
    )
    result, log = _run_logged(scenario)
    starts = {}
    for t, replica, state in log:
        if state == "starting":
            starts[replica] = t
        elif state == "serving":
            assert t == starts.pop(replica) + 30.0
    assert any(state == "serving" for _, _, state in log)
    held, serving = _columns(_pool_rows(result.timeseries), "replicas_held", "replicas_serving")
    assert held.max() == 3 and held.min() >= 1 and serving.min() >= 1
    # No attempt is routed to a replica before it serves.
    replica, arrival = _columns(result.requests, "replica", "arrival_s")
    for index in range(1, 3):
        serving_at = min((t for t, r, s in log if r == index and s == "serving"), default=None)
        if serving_at is not None:
            assert arrival[replica == index].min() >= serving_at


def test_autoscaling_scales_down_after_the_delay_when_load_falls() -> None:
    scenario = _autoscaled(
        3,
        0.2,
        200,
        policy="queueing_delay",
        target=1.0,
        decision_interval_s=10,
        scale_down_delay_s=50,
    )
    result, log = _run_logged(scenario)
    downs = [t for t, _, state in log if state == "draining"]
    assert downs and min(downs) >= 50.0  # nothing stops before the delay has seen low load
    assert _pool_rows(result.timeseries)["replicas_held"].to_pylist()[-1] == 1


def test_replica_hours_count_what_is_held() -> None:
    result = simulate(_scenario(duration_s=100))
    summary = summarize(result.requests, result.timeseries, 20.0, 100.0)
    pool = summary["pools"][0]
    assert pool["replica_hours"] == pytest.approx(4 * 80 / 3600)
    assert pool["replicas_held_mean"] == pytest.approx(4.0)
    assert pool["replicas_serving_min"] == pool["replicas_serving_max"] == 4
    failures = {"scheduled": [{"at_s": 50, "replica": 0}], "restart_s": 20}
    failed = simulate(_scenario({"failures": failures}, duration_s=100))
    pool = summarize(failed.requests, failed.timeseries, 20.0, 100.0)["pools"][0]
    # A restarting replica is still held (and paid for); it does not serve.
    assert pool["replica_hours"] == pytest.approx(4 * 80 / 3600)
    assert pool["replicas_serving_min"] == 3


def _retiring(**source: Any) -> Scenario:
    traffic = {
        "account": "a",
        "model": "old",
        "arrivals": {"process": "poisson", "rate_per_s": 2.0},
        "prompt_tokens": {"dist": "constant", "value": 200},
        "output_tokens": {"dist": "constant", "value": 20},
    }
    pools = {"p": {"replicas": 1, "kv_capacity_tokens": 50_000}}
    return Scenario.model_validate(
        {
            "name": "retire",
            "seed": 1,
            "duration_s": 200,
            "models": {
                "old": {"architecture": "llama-3.1-8b", "pools": pools, "retire_at_s": 100},
                "new": {"architecture": "llama-3.1-8b", "pools": pools},
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {"name": "stays", **traffic},
                {"name": "moves", **traffic, **source},
            ],
        }
    )


def test_a_retired_model_answers_404_from_its_retirement_on_and_migrating_traffic_moves() -> None:
    requests = simulate(_retiring(migrate_to="new")).requests
    traffic, model, status, arrival = _columns(requests, "traffic", "model", "status", "arrival_s")
    before = arrival < 100
    assert set(status[before]) == {200} and set(model[before]) == {"old"}
    stays, moves = traffic == "stays", traffic == "moves"
    assert set(status[stays & ~before]) == {404}
    assert set(status[moves & ~before]) == {200} and set(model[moves & ~before]) == {"new"}
    assert (moves & ~before).sum() > 100


def test_migrate_to_needs_a_retiring_model() -> None:
    from sim.scenario import cross_reference_errors

    scenario = _retiring(migrate_to="new")
    fine = cross_reference_errors(scenario)
    assert fine == []
    data = scenario.model_dump()
    data["models"]["old"]["retire_at_s"] = None
    errors = cross_reference_errors(Scenario.model_validate(data))
    assert errors == [
        (("traffic", 1, "migrate_to"), "model 'old' has no retire_at_s: nothing to migrate from")
    ]


def test_the_autoscaling_rule_is_the_proportional_one_with_a_tolerance() -> None:
    from sim.replica.autoscaling import AUTOSCALERS
    from sim.replica.autoscaling.base import FleetSignals

    policy_class = AUTOSCALERS["utilisation"]
    config = policy_class.Config.model_validate(
        {"policy": "utilisation", "target": 0.5, "max_replicas": 10}
    )
    policy = policy_class(config)

    def wanted(serving: int, utilisation: float) -> int:
        return policy.wanted(FleetSignals(serving, utilisation, 0.0, 0.0))

    assert wanted(4, 0.54) == 4  # within 10% of the target: no change
    assert wanted(4, 0.9) == 8  # ceil(4 x 0.9 / 0.5) = ceil(7.2)
    assert wanted(4, 0.2) == 2  # ceil(1.6)
    assert wanted(3, 0.0) == 0  # the pool clamps to min_replicas
