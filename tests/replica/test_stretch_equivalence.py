"""Event skipping gives the same records as running every iteration (`step_by_step`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from helpers import scheduler

from sim.clock import Clock
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.replica.schedulers import SCHEDULERS
from sim.replica.stretch import stretch_time_s
from sim.request import Request


class TwoRegimeModel:
    """A decode step is the max of two lines in the context (a breakpoint inside most runs)."""

    def decode_lines(self, decode_seqs: int) -> tuple[tuple[float, float], ...]:
        return ((0.008 + 0.0002 * decode_seqs, 2e-7), (0.002 + 0.0001 * decode_seqs, 1.5e-6))

    def iteration_time_s(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        decode = max(a + b * decode_context_tokens for a, b in self.decode_lines(decode_seqs))
        prefill = sum(chunk * (5e-5 + 1e-8 * before) for chunk, before in prefill_chunks)
        return decode + prefill


FIELDS = ("request_id", "replica", "status", "cached_tokens", "preemptions", "generated")
TIMES = ("admitted_s", "first_token_s", "finished_s")


def _serve(
    seed: int,
    step_by_step: bool,
    kv_blocks: int,
    log: list[tuple] | None = None,
    shared_prefixes: bool = False,
    max_prompt_tokens: int = 900,
    policy: str = "strict_priority",
    batch_share: float = 0.1,
) -> tuple[list[Request], Replica]:
    rng = np.random.default_rng(seed)
    env = Clock()
    done: list[Request] = []
    replica = Replica(
        env,
        0,
        TwoRegimeModel(),
        KVCache(kv_blocks),
        block_size=16,
        max_num_seqs=12,
        max_batched_tokens=512,
        step_by_step=step_by_step,
        on_done=done.append,
        scheduler=scheduler(policy),
    )
    replica.log = log
    arrivals = np.cumsum(rng.exponential(0.15, 150))
    tiers = rng.choice(
        ["standard", "priority", "batch"], 150, p=[0.6, 0.4 - batch_share, batch_share]
    )
    for i, t in enumerate(arrivals):
        prompt_tokens = int(rng.integers(1, max_prompt_tokens))
        family = int(rng.integers(0, 3))
        # Three "system prompts" of 20 blocks shared across requests, then private blocks.
        blocks = prompt_tokens // 16
        runs = ((family, 0, min(blocks, 20)),) + (((100 + i, 20, blocks),) if blocks > 20 else ())
        request = Request(
            i,
            "t",
            "a",
            "m",
            str(tiers[i]),
            float(t),
            prompt_tokens,
            int(rng.integers(1, 400)),
            runs if shared_prefixes and blocks else None,
        )
        env.timeout(float(t)).callbacks.append(lambda _, r=request: replica.enqueue(r))
    env.run()
    return sorted(done, key=lambda r: r.request_id), replica


@pytest.mark.parametrize("policy", SCHEDULERS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kv_blocks", [90, 10_000])  # tight memory preempts; ample does not
@pytest.mark.parametrize("shared_prefixes", [False, True])
def test_skipping_matches_step_by_step(
    policy: str, seed: int, kv_blocks: int, shared_prefixes: bool
) -> None:
    skipped, fast = _serve(seed, False, kv_blocks, shared_prefixes=shared_prefixes, policy=policy)
    stepped, slow = _serve(seed, True, kv_blocks, shared_prefixes=shared_prefixes, policy=policy)
    assert len(skipped) == len(stepped) == 150
    for a, b in zip(skipped, stepped, strict=True):
        assert [getattr(a, f) for f in FIELDS] == [getattr(b, f) for f in FIELDS]
        # Times agree up to float summation order (a closed-form sum vs step by step).
        for name in TIMES:
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9, abs=1e-9)
    assert fast.step == slow.step
    assert fast.iterations < slow.iterations  # skipping did skip
    assert fast.kv.used_blocks == slow.kv.used_blocks == 0
    if shared_prefixes:
        assert sum(r.cached_tokens for r in skipped) > 0


@pytest.mark.parametrize("policy", SCHEDULERS)
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kv_blocks", [400, 10_000])
def test_long_prompts_in_prefill_runs_match_step_by_step(
    policy: str, seed: int, kv_blocks: int
) -> None:
    """Prompts of up to six budgets: prefill runs of several iterations, cut by arrivals,
    finishes and memory, beside shared prefixes."""
    log: list[tuple] = []
    skipped, _ = _serve(seed, False, kv_blocks, log, True, 3_000, policy)
    stepped, _ = _serve(seed, True, kv_blocks, None, True, 3_000, policy)
    assert any(e[0] == "iteration" and e[4] and e[5] > 1 for e in log)  # runs did happen
    for a, b in zip(skipped, stepped, strict=True):
        assert [getattr(a, f) for f in FIELDS] == [getattr(b, f) for f in FIELDS]
        for name in TIMES:
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9, abs=1e-9)


def test_tight_memory_preempts() -> None:
    requests, _ = _serve(0, False, 90)
    assert sum(r.preemptions for r in requests) > 0


def test_stretch_time_matches_the_sum_of_steps() -> None:
    lines = TwoRegimeModel().decode_lines(7)
    for context0, steps in [(0, 1), (100, 50), (5000, 700), (20_000, 3)]:
        brute = sum(max(a + b * (context0 + 7 * i) for a, b in lines) for i in range(steps))
        assert stretch_time_s(lines, context0, 7, steps) == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("kv_blocks", [90, 10_000])
def test_tokens_are_conserved(kv_blocks: int) -> None:
    """Every prompt token is prefilled once (more only to recompute after a preemption) and
    every generated token comes from one prefill completion or one decode step. No Batch: a
    Batch row gives its slot to a waiting interactive request, even with memory to spare."""
    log: list[tuple] = []
    requests, _ = _serve(3, False, kv_blocks, log, batch_share=0.0)
    unlogged, _ = _serve(3, False, kv_blocks, batch_share=0.0)
    assert [r.finished_s for r in requests] == [r.finished_s for r in unlogged]
    prefill_tokens = sum(chunk for e in log if e[0] == "iteration" for _, chunk in e[4])
    decode_tokens = sum(e[3] * e[5] for e in log if e[0] == "iteration")
    assert all(r.generated == r.output_tokens for r in requests)
    assert sorted(e[2] for e in log if e[0] == "finish") == list(range(len(requests)))
    if kv_blocks == 10_000:
        assert sum(r.preemptions for r in requests) == 0
        assert prefill_tokens == sum(r.prompt_tokens for r in requests)
        assert decode_tokens + len(requests) == sum(r.output_tokens for r in requests)
    else:
        assert sum(r.preemptions for r in requests) > 0
        assert prefill_tokens > sum(r.prompt_tokens for r in requests)


@pytest.mark.parametrize(
    "lines", [((0.01, 2e-7),), ((0.01, 0.0),), TwoRegimeModel().decode_lines(5)]
)
def test_steps_done_by_finds_the_step_in_flight(lines: tuple[tuple[float, float], ...]) -> None:
    from sim.replica.stretch import steps_done_by

    rng = np.random.default_rng(0)
    for _ in range(300):
        context0, seqs, steps = int(rng.integers(0, 50_000)), int(rng.integers(1, 64)), 400
        elapsed = float(rng.uniform(0, stretch_time_s(lines, context0, seqs, steps)))
        done = steps_done_by(lines, context0, seqs, steps, elapsed)
        assert stretch_time_s(lines, context0, seqs, done) > elapsed
        assert done == 1 or stretch_time_s(lines, context0, seqs, done - 1) <= elapsed


def test_a_long_prompt_is_one_prefill_run() -> None:
    """A prompt of four budgets beside steady decodes is one event of four iterations, priced
    as the four single iterations that `step_by_step` runs."""
    logs: dict[bool, list[tuple]] = {}
    for step_by_step in (False, True):
        env = Clock()
        replica = Replica(
            env,
            0,
            TwoRegimeModel(),
            KVCache(10_000),
            16,
            12,
            512,
            step_by_step,
            lambda r: None,
            scheduler(),
        )
        replica.log = logs[step_by_step] = []
        replica.enqueue(Request(0, "t", "a", "m", "standard", 0.0, 100, 300))
        long = Request(1, "t", "a", "m", "standard", 1.0, 4 * 511, 2)
        env.timeout(1.0).callbacks.append(lambda _, r=long, at=replica: at.enqueue(r))
        env.run()
    run = [e for e in logs[False] if e[0] == "iteration" and e[4] and e[4][0][0] == 1]
    steps = [e for e in logs[True] if e[0] == "iteration" and e[4] and e[4][0][0] == 1]
    assert len(run) == 1 and run[0][5] == 4 and run[0][4] == [(1, 4 * 511)]
    assert [e[4] for e in steps] == [[(1, 511)]] * 4
    assert run[0][1] == pytest.approx(steps[0][1], rel=1e-12)
    assert run[0][2] == pytest.approx(sum(e[2] for e in steps), rel=1e-12)
