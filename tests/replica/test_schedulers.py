"""Replica scheduler policies: the default reproduces the records of the scheduler it replaced,
every registered policy keeps the same contract, and each does what its name promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import HandModel, scheduler
from test_stretch_equivalence import TwoRegimeModel, _serve

from sim.clock import Clock
from sim.errors import InputError
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.replica.schedulers import SCHEDULERS
from sim.request import Request
from sim.scenario_loader import parse_scenario

RECORDS = Path(__file__).parent / "data" / "strict_priority_records.json"


@pytest.mark.parametrize("key", list(json.loads(RECORDS.read_text())))
def test_strict_priority_reproduces_the_records_before_the_policies(key: str) -> None:
    """Records written by the hard-wired scheduler that `strict_priority` replaced (tight memory:
    dozens of preemptions), bit for bit; rewritten when Batch left the schedulers' queues for
    its pool's (a Batch row now gives way to a waiting interactive request). Without Batch,
    the records before and after that change were checked identical for every policy."""
    seed, kv_blocks, shared = (int(part) for part in key.split("-"))
    requests, _ = _serve(seed, False, kv_blocks, None, bool(shared), 1500, "strict_priority")
    got = [
        [
            r.request_id,
            r.status,
            r.preemptions,
            r.cached_tokens,
            r.generated,
            r.admitted_s.hex(),
            r.first_token_s.hex(),
            r.finished_s.hex(),
        ]
        for r in requests
    ]
    assert got == json.loads(RECORDS.read_text())[key]


class _CheckedKV(KVCache):
    def allocate(self, blocks: int) -> None:
        super().allocate(blocks)
        assert self.used_blocks <= self.capacity_blocks


@pytest.mark.parametrize("policy", SCHEDULERS)
@pytest.mark.parametrize("step_by_step", [False, True])
def test_every_policy_keeps_the_contract(policy: str, step_by_step: bool) -> None:
    """No request admitted while running; KV never over capacity; every admitted request
    finishes, or is preempted and readmitted (admissions = preemptions + 1; Batch rows are
    admitted from the pool's queue, not the scheduler's)."""
    base = SCHEDULERS[policy]
    admissions: dict[int, int] = {}

    class Checked(base):  # type: ignore[valid-type, misc]
        def pop_head(self, request: Request) -> None:
            assert request not in replica.running
            admissions[request.request_id] = admissions.get(request.request_id, 0) + 1
            super().pop_head(request)

        def requeue(self, request: Request) -> None:
            assert request not in replica.running
            super().requeue(request)

    env = Clock()
    done: list[Request] = []
    replica = Replica(
        env,
        0,
        TwoRegimeModel(),
        _CheckedKV(120),
        16,
        12,
        512,
        step_by_step,
        done.append,
        Checked(base.Config(policy=policy)),
    )
    tiers = ["priority", "standard", "batch"]
    for i in range(90):
        request = Request(i, "t", "a", "m", tiers[i % 3], i * 0.05, 100 + 37 * (i % 11), 200)
        env.timeout(i * 0.05).callbacks.append(lambda _, r=request: replica.enqueue(r))
    env.run()
    assert sorted(r.request_id for r in done) == list(range(90))
    assert all(r.status == 200 and r.generated == r.output_tokens for r in done)
    assert all(admissions[r.request_id] == r.preemptions + 1 for r in done if r.tier != "batch")
    assert not any(r.tier == "batch" for r in done if r.request_id in admissions)
    assert sum(r.preemptions for r in done) > 0  # memory was tight enough to test preemption
    assert replica.kv.used_blocks == 0 and not replica.running and replica.waiting == 0


def _one_slot(policy: str, tiers: list[str], kv_blocks: int = 1000) -> list[Request]:
    """Requests of 8 + 4 tokens all waiting at time 0 behind a running one, on one slot."""
    env = Clock()
    replica = Replica(
        env, 0, HandModel(), KVCache(kv_blocks), 4, 1, 8, False, lambda r: None, scheduler(policy)
    )
    requests = [
        Request(i, "t", "a", "m", tier, 0.0, prompt_tokens=8, output_tokens=4)
        for i, tier in enumerate(tiers)
    ]
    for request in requests:
        replica.enqueue(request)
    env.run()
    return sorted(requests, key=lambda r: r.admitted_s)


def test_fcfs_ignores_interactive_tiers_and_batch_comes_last() -> None:
    tiers = ["standard", "batch", "standard", "priority", "batch", "priority"]
    assert [r.request_id for r in _one_slot("fcfs", tiers)] == [0, 2, 3, 5, 1, 4]
    assert [r.request_id for r in _one_slot("strict_priority", tiers)] == [0, 3, 5, 2, 1, 4]


def test_weighted_fair_shares_tokens_by_weight_and_never_starves() -> None:
    """Equal requests, both tiers backlogged: Priority (4) gets 4 admissions per Standard (1).
    Batch is in no policy's share: it waits for every interactive request."""
    order = [r.tier for r in _one_slot("weighted_fair", ["priority"] * 40 + ["standard"] * 10)]
    assert order[:20].count("priority") == 16 and order[:20].count("standard") == 4
    order = [r.tier for r in _one_slot("weighted_fair", ["priority"] * 40 + ["batch"] * 3)]
    assert order.index("batch") == 40
    strict = [r.tier for r in _one_slot("strict_priority", ["priority"] * 40 + ["batch"] * 3)]
    assert strict.index("batch") == 40  # strict priority starves Batch while Priority waits


def _memory_held_by_standard(policy: str) -> tuple[Request, Request]:
    """A Standard request holds 5 of 8 blocks of 4 tokens when a Priority one arrives that
    needs 4."""
    env = Clock()
    replica = Replica(
        env, 0, HandModel(), KVCache(8), 4, 4, 16, False, lambda r: None, scheduler(policy)
    )
    standard = Request(0, "t", "a", "m", "standard", 0.0, prompt_tokens=16, output_tokens=8)
    urgent = Request(1, "t", "a", "m", "priority", 0.02, prompt_tokens=12, output_tokens=4)
    replica.enqueue(standard)
    env.timeout(0.02).callbacks.append(lambda _: replica.enqueue(urgent))
    env.run()
    assert standard.status == urgent.status == 200
    return standard, urgent


def test_preemptive_priority_preempts_lower_tiers_to_admit() -> None:
    standard, urgent = _memory_held_by_standard("preemptive_priority")
    assert standard.preemptions == 1 and urgent.admitted_s < 0.02 + 0.015  # the step in flight
    assert urgent.finished_s < standard.finished_s
    standard, urgent = _memory_held_by_standard("strict_priority")
    assert standard.preemptions == 0 and urgent.admitted_s == standard.finished_s


def test_slot_models_refuse_a_preempting_scheduler() -> None:
    text = """name: x
duration_s: 10
models:
  m:
    architecture: llama-3.1-8b
    pools:
      p:
        perf: {model: fixed, service_s: 1}
        scheduler: {policy: preemptive_priority}
accounts: [{name: a}]
traffic:
  - name: t
    account: a
    model: m
    arrivals: {process: poisson, rate_per_s: 1}
    prompt_tokens: {dist: constant, value: 10}
    output_tokens: {dist: constant, value: 10}
"""
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml")
    assert "x.yaml" in str(caught.value) and "preemptive_priority" in str(caught.value)
    for policy in ("fcfs", "strict_priority", "weighted_fair"):
        parse_scenario(text.replace("preemptive_priority", policy), "x.yaml")
