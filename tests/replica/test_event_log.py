"""Exact event log of a two-request batching case, with iteration times computed by hand."""

from __future__ import annotations

import pytest
from helpers import HandModel, scheduler

from sim.clock import Clock
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.request import Request


def _run(step_by_step: bool) -> tuple[list[tuple], dict[int, Request], Replica]:
    env = Clock()
    done: dict[int, Request] = {}
    replica = Replica(
        env,
        0,
        HandModel(),
        KVCache(100),
        block_size=4,
        max_num_seqs=4,
        max_batched_tokens=8,
        step_by_step=step_by_step,
        on_done=lambda r: done.__setitem__(r.request_id, r),
        scheduler=scheduler(),
    )
    replica.log = []
    a = Request(0, "t", "acct", "m", "standard", 0.0, prompt_tokens=10, output_tokens=3)
    b = Request(1, "t", "acct", "m", "standard", 0.005, prompt_tokens=4, output_tokens=2)
    replica.enqueue(a)
    env.timeout(0.005).callbacks.append(lambda _: replica.enqueue(b))
    env.run()
    return replica.log, done, replica


@pytest.mark.parametrize("step_by_step", [False, True])
def test_two_requests_exact_log(step_by_step: bool) -> None:
    log, done, replica = _run(step_by_step)
    # 1. t=0: A alone, first chunk of 8 of its 10 prompt tokens: 10 + 0.1 * 8 = 10.8 ms.
    #    B arrives at 5 ms and waits for the iteration to end.
    # 2. t=10.8 ms: A's last 2 tokens + B's 4 (budget 8): 10 + 0.1 * 6 = 10.6 ms -> 21.4 ms.
    #    Both prefills complete: first tokens of A and B at 21.4 ms.
    # 3. t=21.4 ms: decode of 2 sequences, context (10+1) + (4+1) = 16:
    #    10 + 2 + 0.01 * 16 = 12.16 ms -> 33.56 ms. B has its 2 tokens and finishes.
    # 4. t=33.56 ms: decode of A, context 10 + 2 = 12: 10 + 1 + 0.12 = 11.12 ms -> 44.68 ms.
    expected = [
        ("iteration", 0.0, 0.0108, 0, [(0, 8)], 1),
        ("iteration", 0.0108, 0.0106, 0, [(0, 2), (1, 4)], 1),
        ("first_token", 0.0214, 0),
        ("first_token", 0.0214, 1),
        ("iteration", 0.0214, 0.01216, 2, [], 1),
        ("finish", 0.03356, 1),
        ("iteration", 0.03356, 0.01112, 1, [], 1),
        ("finish", 0.04468, 0),
    ]
    assert len(log) == len(expected)
    for got, want in zip(log, expected, strict=True):
        assert len(got) == len(want)
        for got_field, want_field in zip(got, want, strict=True):
            if isinstance(want_field, float):
                assert got_field == pytest.approx(want_field, abs=1e-12)
            else:
                assert got_field == want_field
    a, b = done[0], done[1]
    assert (a.admitted_s, b.admitted_s) == pytest.approx((0.0, 0.0108))
    assert a.generated == 3 and b.generated == 2
    # Blocks of 4 tokens: A holds 3 for 10+1 tokens and takes a 4th when its context reaches 12;
    # everything is released at the end.
    assert replica.kv.used_blocks == 0
