"""Contract tests over every routing policy while replicas come and go: a choice is always a
serving replica, and each policy keeps its own guarantees on the serving set."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from sim.request import Request
from sim.routing import POLICIES
from sim.routing.base import PoolLoad, PoolView, RoutingPolicy
from sim.routing.hashing import rendezvous_order

SLOTS = 6


class _Idle:
    waiting = 0
    running: tuple[()] = ()
    kv_used_blocks = 0


def _request(i: int, key: str | None) -> Request:
    runs = ((7, 0, 4 + i % 5),) if i % 3 else None
    request = Request(i, "t", "a", "m", "standard", i * 0.5, 100 + i % 50, 20, block_runs=runs)
    request.affinity_key = key
    return request


def _policy(name: str) -> tuple[RoutingPolicy, PoolView]:
    view = PoolView(PoolLoad(SLOTS), [_Idle() for _ in range(SLOTS)], 1000)
    config = POLICIES[name].Config.model_validate({"policy": name})
    return POLICIES[name](config, view, np.random.default_rng(1)), view


def _set_serving(policy: RoutingPolicy, view: PoolView, replica: int, serving: bool) -> None:
    """What the pool does when a replica joins or leaves the serving set."""
    if serving:
        view.serving.append(replica)
        view.serving.sort()
    else:
        view.serving.remove(replica)
    view.is_serving[replica] = serving
    policy.serving_changed(replica, serving)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_chooses_only_serving_replicas_as_the_set_changes(name: str) -> None:
    policy, view = _policy(name)
    rng = np.random.default_rng(2)
    chosen: Counter[int] = Counter()
    live: list[tuple[int, Request]] = []
    for i in range(3000):
        if i % 50 == 0:  # a replica leaves or joins; at least one always serves
            replica = int(rng.integers(SLOTS))
            if view.is_serving[replica] and len(view.serving) > 1:
                _set_serving(policy, view, replica, False)
            elif not view.is_serving[replica]:
                _set_serving(policy, view, replica, True)
        request = _request(i, f"k{i % 40}" if i % 2 else None)
        replica = policy.choose(request)
        assert view.is_serving[replica], (i, replica, view.serving)
        chosen[replica] += 1
        view.load.add(replica, request)
        live.append((replica, request))
        if len(live) > 30:
            done, finished = live.pop(0)
            view.load.remove(done, finished)
    assert len(chosen) == SLOTS  # every replica served at some point


@pytest.mark.parametrize("name", ["random", "power_of_two", "round_robin"])
def test_load_blind_choices_cover_exactly_the_serving_set(name: str) -> None:
    policy, view = _policy(name)
    for replica in (0, 3, 5):
        _set_serving(policy, view, replica, False)
    seen = Counter(policy.choose(_request(i, None)) for i in range(3000))
    assert set(seen) == {1, 2, 4}
    if name != "power_of_two":  # uniform over the three (loads stay zero here)
        assert all(abs(n - 1000) < 120 for n in seen.values())


def test_affinity_moves_a_key_to_the_next_serving_replica_in_its_order_and_back() -> None:
    policy, view = _policy("affinity")
    order = rendezvous_order("s1", SLOTS)
    assert policy.choose(_request(1, "s1")) == order[0]
    _set_serving(policy, view, order[0], False)
    assert policy.choose(_request(2, "s1")) == order[1]
    _set_serving(policy, view, order[1], False)
    assert policy.choose(_request(3, "s1")) == order[2]
    _set_serving(policy, view, order[0], True)
    assert policy.choose(_request(4, "s1")) == order[0]


def test_affinity_bound_is_over_the_serving_replicas_only() -> None:
    policy, view = _policy("affinity")
    order = rendezvous_order("hot", SLOTS)
    for replica in order[2:]:
        _set_serving(policy, view, replica, False)
    home = view.replicas[order[0]]
    home.waiting = 2  # type: ignore[misc]  # requests queued there: it may be hot
    # Two replicas serve, 10 requests in flight each: mean (20 + 1) / 2, bound 13.1 >= 10, so
    # the key stays (over all six slots the bound would be 4.4, and it would spill).
    view.load.outstanding_requests[order[0]] = 10
    view.load.outstanding_requests[order[1]] = 10
    assert policy.choose(_request(0, "hot")) == order[0]
    # The other serving replica empties: bound 1.25 x 11 / 2 = 6.9 < 10, spill.
    view.load.outstanding_requests[order[1]] = 0
    assert policy.choose(_request(1, "hot")) == order[1]


@pytest.mark.parametrize("name", ["cache_aware", "weighted_scorer"])
def test_prefix_routers_forget_a_replica_that_left(name: str) -> None:
    policy, view = _policy(name)
    runs = ((9, 0, 40),)
    request = _request(0, None)
    request.block_runs = runs
    home = policy.choose(request)
    index = policy.index  # type: ignore[attr-defined]
    assert index.matches(runs)[home] == 40
    _set_serving(policy, view, home, False)
    assert index.matches(runs)[home] == 0
    request = _request(1, None)
    request.block_runs = runs
    assert policy.choose(request) != home
