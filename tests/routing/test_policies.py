"""Contract tests run over every registered routing policy, and affinity's own guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tables_equal

from sim.engine import simulate
from sim.request import Request
from sim.routing import POLICIES
from sim.routing.affinity import AffinityConfig, AffinityPolicy
from sim.routing.base import PoolLoad, PoolView
from sim.scenario import Scenario


def _scenario(policy: dict, seed: int = 3) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "routing",
            "seed": seed,
            "duration_s": 120,
            "models": {
                "a": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 5, "kv_capacity_tokens": 200_000}},
                    "routing": policy,
                },
                "b": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 3, "kv_capacity_tokens": 200_000}},
                    "routing": policy,
                },
            },
            "accounts": [{"name": "x", "users": 50}],
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
                },
                {
                    "name": "api",
                    "account": "x",
                    "model": "b",
                    "arrivals": {"process": "poisson", "rate_per_s": 3.0},
                    "prompt_tokens": {"dist": "uniform", "low": 10, "high": 2000},
                    "output_tokens": {"dist": "uniform", "low": 1, "high": 300},
                    "affinity": "user",
                },
            ],
        }
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_routes_within_the_model_and_is_deterministic(name: str) -> None:
    first = simulate(_scenario({"policy": name})).requests
    again = simulate(_scenario({"policy": name})).requests
    other = simulate(_scenario({"policy": name}, seed=4)).requests
    assert tables_equal(first, again)
    assert not tables_equal(first, other)
    model = first["model"].to_numpy(zero_copy_only=False)
    replica = first["replica"].to_numpy()
    status = first["status"].to_numpy()
    assert (status == 200).all()
    assert ((replica >= 0) & (replica < 5))[model == "a"].all()
    assert ((replica >= 0) & (replica < 3))[model == "b"].all()
    # Load reaches more than one replica of each pool.
    assert len(set(replica[model == "a"])) > 1 and len(set(replica[model == "b"])) > 1


def _request(i: int, key: str | None, tokens: int = 100) -> Request:
    request = Request(i, "t", "a", "m", "standard", float(i), tokens, tokens)
    request.affinity_key = key
    return request


class _Replica:
    """What a router reads of a replica: requests queued and running."""

    def __init__(self) -> None:
        self.waiting = 0
        self.running: dict[Request, None] = {}


def _affinity(
    replicas: int, bound: float = 1.25
) -> tuple[AffinityPolicy, PoolLoad, list[_Replica]]:
    load = PoolLoad(replicas)
    states = [_Replica() for _ in range(replicas)]
    view = PoolView(load, states, 1000)
    config = AffinityConfig(policy="affinity", bounded_load=bound)
    return AffinityPolicy(config, view, np.random.default_rng(0)), load, states


def test_affinity_keeps_a_session_on_one_replica_while_loads_are_balanced() -> None:
    policy, load, _ = _affinity(8)
    homes: dict[str, set[int]] = {}
    for turn in range(6):
        for s in range(200):
            key = f"s{s}"
            request = _request(turn * 1000 + s, key)
            replica = policy.choose(request)
            homes.setdefault(key, set()).add(replica)
            load.add(replica, request)
        # Every turn finishes before the next: loads return to balance.
        load.outstanding_tokens = [0] * 8
        load.outstanding_requests = [0] * 8
    assert all(len(replicas) == 1 for replicas in homes.values())
    assert len({next(iter(r)) for r in homes.values()}) == 8  # keys spread over replicas


def test_affinity_spills_once_a_replica_passes_the_bound() -> None:
    policy, load, states = _affinity(4, bound=1.25)
    home = policy.choose(_request(0, "hot"))
    load.outstanding_requests[:] = [10, 10, 10, 10]  # a balanced pool
    assert policy.choose(_request(1, "hot")) == home
    # 15 > 1.25 x (45 + 1) / 4 = 14.4 in flight: past the bound (the mean counts the newcomer),
    # but every request there runs in the batch: not hot, the session stays.
    load.outstanding_requests[home] = 15
    assert policy.choose(_request(2, "hot")) == home
    # Requests queue there too: hot, its new requests spill.
    states[home].waiting = 3
    spilled = policy.choose(_request(3, "hot"))
    assert spilled != home
    # The spill target is the key's second choice, stable while the first stays overloaded.
    assert policy.choose(_request(4, "hot")) == spilled
    # Within the bound, a queue alone (a newcomer waiting for the next iteration) is no reason.
    load.outstanding_requests[home] = 14
    assert policy.choose(_request(5, "hot")) == home
    assert policy.spills == 2


def test_affinity_spills_the_sessions_of_a_replica_pushed_past_the_bound() -> None:
    """New sessions whose home is pushed past the bound go elsewhere; the others stay home."""
    policy, load, states = _affinity(8, bound=1.25)
    homes = {f"s{s}": policy.choose(_request(s, f"s{s}")) for s in range(400)}
    hot = 0
    load.outstanding_requests[:] = [40] * 8
    load.outstanding_requests[hot] = 80
    states[hot].waiting = 20
    for s, key in enumerate(homes):
        replica = policy.choose(_request(1000 + s, key))
        assert (replica != hot) if homes[key] == hot else (replica == homes[key])
    assert sum(home == hot for home in homes.values()) > 20


def test_affinity_without_a_key_goes_to_the_least_loaded_and_says_so() -> None:
    policy, load, _ = _affinity(3)
    assert policy.warnings() == []
    load.outstanding_tokens[:] = [500, 100, 300]
    assert policy.choose(_request(0, None)) == 1
    policy.choose(_request(1, "k"))
    (warning,) = policy.warnings()
    assert "1 of 2 requests carried no affinity key" in warning
