"""Batch rows on one replica (docs/economics.md, Batch): taken from the pool's queue only while no
interactive request waits and Batch is under its share; the first to give way, under every
policy; within the slowdown bound beside interactive work."""

from __future__ import annotations

import math

import pytest
from helpers import HandModel, scheduler

from sim.clock import Clock
from sim.replica.batch import BatchQueue
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.replica.schedulers import SCHEDULERS
from sim.request import Request


def _replica(env: Clock, policy: str, kv_blocks: int, seqs: int, **batch: float) -> Replica:
    return Replica(
        env,
        0,
        HandModel(),
        KVCache(kv_blocks),
        4,
        seqs,
        64,
        False,
        lambda r: None,
        scheduler(policy),
        BatchQueue(),
        **batch,
    )


def _rows(n: int, prompt: int = 8, output: int = 40) -> list[Request]:
    return [Request(100 + i, "job", "a", "m", "batch", 0.0, prompt, output) for i in range(n)]


def _most_at_once(rows: list[Request]) -> int:
    events = sorted(
        [(r.admitted_s, 1) for r in rows] + [(r.finished_s, -1) for r in rows],
        key=lambda e: (e[0], e[1]),
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_batch_holds_less_than_its_share_of_the_slots(share: float) -> None:
    env = Clock()
    replica = _replica(env, "strict_priority", 10_000, 8, batch_max_share=share)
    rows = _rows(30)
    for row in rows:
        replica.enqueue(row)
    env.run()
    assert all(r.status == 200 for r in rows)
    assert _most_at_once(rows) == math.ceil(share * 8)


def test_batch_holds_less_than_its_share_of_the_blocks() -> None:
    """Rows of 8 + 40 tokens count 12 blocks of 4 each; 100 blocks at share 0.5: at most 5 rows
    (the fifth admitted while Batch holds 48 < 50)."""
    env = Clock()
    replica = _replica(env, "strict_priority", 100, 64, batch_max_share=0.5)
    rows = _rows(30)
    for row in rows:
        replica.enqueue(row)
    env.run()
    assert _most_at_once(rows) == 5


@pytest.mark.parametrize("policy", SCHEDULERS)
def test_an_interactive_request_takes_the_slot_a_batch_row_holds(policy: str) -> None:
    """One slot, held by a Batch row: a Standard request that arrives preempts it at the step
    in flight, whatever the policy, and the row recomputes afterwards."""
    env = Clock()
    replica = _replica(env, policy, 10_000, 1)
    (row,) = _rows(1, output=100)
    urgent = Request(1, "t", "a", "m", "standard", 0.05, prompt_tokens=8, output_tokens=4)
    replica.enqueue(row)
    env.timeout(0.05).callbacks.append(lambda _: replica.enqueue(urgent))
    env.run()
    assert urgent.admitted_s < 0.05 + 0.012  # the step in flight (10 ms + 1 ms per decode)
    assert row.preemptions == 1 and row.finished_s > urgent.finished_s
    assert row.status == urgent.status == 200


def test_no_batch_row_is_admitted_while_an_interactive_request_waits() -> None:
    env = Clock()
    replica = _replica(env, "fcfs", 10_000, 1)
    standard = [
        Request(i, "t", "a", "m", "standard", 0.0, prompt_tokens=8, output_tokens=4)
        for i in range(5)
    ]
    rows = _rows(3)
    for request in [*rows[:1], *standard, *rows[1:]]:
        replica.enqueue(request)
    env.run()
    last_standard = max(r.finished_s for r in standard)
    # The first row came before any Standard request and was preempted by it.
    assert all(r.admitted_s >= last_standard for r in rows[1:])
    assert rows[0].preemptions == 1


def test_beside_interactive_decodes_batch_gets_only_the_room_the_bound_leaves() -> None:
    """HandModel: a decode step is 10 ms + 1 ms per sequence + 0.01 ms per context token, a
    prefill token 0.1 ms. Beside 10 interactive decodes (a step of 20 to 50 ms) a 5% bound
    leaves room for one or two Batch decodes (1 ms + their context) at a time, prefill chunks of a
    few tokens; once the interactive requests are done, Batch takes its share."""
    env = Clock()
    replica = _replica(
        env, "strict_priority", 100_000, 64, batch_max_slowdown=0.05, batch_max_share=0.5
    )
    interactive = [
        Request(i, "t", "a", "m", "standard", 0.0, prompt_tokens=8, output_tokens=300)
        for i in range(10)
    ]
    for request in interactive:
        replica.enqueue(request)
    rows = _rows(40, prompt=40, output=50)
    env.timeout(0.5).callbacks.append(lambda _: [replica.enqueue(r) for r in rows])
    env.run()
    assert all(r.status == 200 for r in [*interactive, *rows])
    end_s = max(r.finished_s for r in interactive)
    beside = [r for r in rows if r.admitted_s < end_s]
    assert beside and _most_at_once(beside) <= 2
    assert max(r.preemptions for r in rows) == 0
    assert _most_at_once([r for r in rows if r.admitted_s >= end_s]) == 32  # half of 64 slots
