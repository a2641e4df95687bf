"""Which request memory pressure preempts: the most recently admitted of the lowest tier."""

from __future__ import annotations

import pytest
from helpers import HandModel, scheduler

from sim.clock import Clock
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.request import Request


def _two_under_pressure(first_tier: str, later_tier: str, step_by_step: bool) -> list[Request]:
    """Two requests of 8 prompt and 20 output tokens, the second admitted one iteration after
    the first, on 8 KV blocks of 4 tokens: each takes 3 blocks at admission and 1 more every
    4 tokens, so both decoding need 10 blocks and one of them must be preempted."""
    env = Clock()
    replica = Replica(
        env,
        0,
        HandModel(),
        KVCache(8),
        block_size=4,
        max_num_seqs=4,
        max_batched_tokens=8,
        step_by_step=step_by_step,
        on_done=lambda r: None,
        scheduler=scheduler(),
    )
    first = Request(0, "t", "acct", "m", first_tier, 0.0, prompt_tokens=8, output_tokens=20)
    later = Request(1, "t", "acct", "m", later_tier, 0.005, prompt_tokens=8, output_tokens=20)
    replica.enqueue(first)
    env.timeout(0.005).callbacks.append(lambda _: replica.enqueue(later))
    env.run()
    assert first.status == later.status == 200
    assert first.admitted_s < later.admitted_s
    return [first, later]


@pytest.mark.parametrize("step_by_step", [False, True])
@pytest.mark.parametrize(
    ("first_tier", "later_tier", "victim"),
    [
        ("batch", "standard", 0),  # Batch never displaces a later Standard request
        ("standard", "priority", 0),
        ("batch", "priority", 0),
        ("standard", "batch", 1),
        ("priority", "standard", 1),
        ("standard", "standard", 1),  # within a tier: the most recently admitted
    ],
)
def test_the_lowest_tier_is_preempted_then_the_latest_admitted(
    first_tier: str, later_tier: str, victim: int, step_by_step: bool
) -> None:
    requests = _two_under_pressure(first_tier, later_tier, step_by_step)
    assert [r.preemptions for r in requests] == [int(i == victim) for i in range(2)]
