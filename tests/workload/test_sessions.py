"""Closed-loop sessions: turns grow by the history, wait for the answer plus a think time,
share system prompts, and stick to one replica under affinity."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from sim.clock import Clock
from sim.engine import simulate
from sim.scenario import Scenario
from sim.workload.retry import RetryConfig
from sim.workload.source import SourceContext, TierDraw


def _scenario(
    routing: dict | None = None, think: dict | None = None, **session: object
) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "sessions",
            "seed": 3,
            "duration_s": 300,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 4}},
                    "routing": routing or {"policy": "affinity", "bounded_load": 100},
                }
            },
            "accounts": [{"name": "a", "users": 10}],
            "traffic": [
                {
                    "name": "chat",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 0.5},
                    "sessions": {
                        "turns": {"dist": "constant", "value": 5},
                        "think_time_s": think or {"dist": "constant", "value_s": 2.0},
                        "system_prompt_tokens": {"dist": "constant", "value": 320},
                        **session,
                    },
                    "prompt_tokens": {"dist": "constant", "value": 40},
                    "output_tokens": {"dist": "constant", "value": 30},
                }
            ],
        }
    )


def _turns(table: pa.Table) -> dict[int, list[dict]]:
    sessions: dict[int, list[dict]] = {}
    for row in table.sort_by("arrival_s").to_pylist():
        sessions.setdefault(row["session_id"], []).append(row)
    return sessions


def test_each_turn_resends_the_history_after_the_answer_and_a_think_time() -> None:
    sessions = _turns(simulate(_scenario()).requests)
    complete = [turns for turns in sessions.values() if len(turns) == 5]
    assert len(complete) > 50
    for turns in complete:
        assert [t["turn"] for t in turns] == [1, 2, 3, 4, 5]
        # system prompt 320 + (message 40 + answer 30) per earlier turn + the new message 40
        assert [t["prompt_tokens"] for t in turns] == [360 + 70 * k for k in range(5)]
        for before, after in itertools.pairwise(turns):
            assert after["arrival_s"] == pytest.approx(before["finished_s"] + 2.0)


def test_affinity_keeps_sessions_on_one_replica_and_reuses_their_history() -> None:
    requests = simulate(_scenario()).requests  # bound so loose that nothing spills
    for turns in _turns(requests).values():
        assert len({t["replica"] for t in turns}) == 1
    # The default bound spills only from a replica with requests queued: light, uneven load
    # moves no turn.
    bounded = _turns(simulate(_scenario({"policy": "affinity"})).requests)
    assert all(len({t["replica"] for t in turns}) == 1 for turns in bounded.values())
    cached = requests["cached_tokens"].to_numpy()
    turn = requests["turn"].to_numpy()
    prompt = requests["prompt_tokens"].to_numpy()
    # Later turns reuse all full blocks of the previous prompt and answer (16-token blocks).
    later = turn > 1
    previous_context = prompt[later] - 40
    assert (cached[later] == (previous_context // 16) * 16).all()
    # First turns reuse at most the shared system prompt (20 full blocks).
    assert cached[~later].max() <= 320


def test_system_prompts_follow_zipf_popularity() -> None:
    scenario = _scenario(
        system_prompts=5,
        system_prompt_choice="zipf",
        system_prompt_tokens={"dist": "uniform", "low": 200, "high": 2000},
    )
    requests = simulate(scenario).requests
    first = requests.filter(pa.compute.equal(requests["turn"], 1))
    # Variants have different lengths: the prompt length of a first turn tells the variant.
    lengths, counts = np.unique(first["prompt_tokens"].to_numpy(), return_counts=True)
    assert len(lengths) <= 5
    assert counts.max() > 2 * counts.min()


def test_think_times_are_drawn_from_their_distribution() -> None:
    scenario = _scenario(think={"dist": "exponential", "mean_s": 4.0})
    gaps = []
    for turns in _turns(simulate(scenario).requests).values():
        gaps += [b["arrival_s"] - a["finished_s"] for a, b in itertools.pairwise(turns)]
    gaps_array = np.array(gaps)
    # Mean of n exponential draws: 4 s within 4 standard errors.
    assert abs(gaps_array.mean() - 4.0) < 4 * 4.0 / np.sqrt(len(gaps_array))


def test_an_agent_shape_grows_long_contexts_that_stay_cached() -> None:
    scenario = _scenario(
        think={"dist": "constant", "value_s": 0.3},
        turns={"dist": "constant", "value": 30},
        system_prompt_tokens={"dist": "constant", "value": 4000},
        max_context_tokens=60_000,
    )
    data = scenario.model_dump(by_alias=True)
    data["traffic"][0]["prompt_tokens"] = {"dist": "constant", "value": 1500}
    data["traffic"][0]["arrivals"]["rate_per_s"] = 0.05
    agent = Scenario.model_validate(data)
    requests = simulate(agent).requests
    prompt = requests["prompt_tokens"].to_numpy()
    assert prompt.max() > 40_000 and prompt.max() <= 60_000  # long, bounded by the context cap
    later = requests["turn"].to_numpy() > 1
    hit = requests["cached_tokens"].to_numpy()[later].sum() / prompt[later].sum()
    assert hit > 0.9


def test_block_owners_of_different_sources_never_meet() -> None:
    """Owners carry 64 bits of the source's name: names whose CRC32 agree (as the old 20-bit
    namespace assumed they would not) still get disjoint sessions, variants and trace blocks."""
    import zlib

    from sim.workload.chains import session_owner, system_owner, trace_owner

    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    for owner in (session_owner, system_owner, trace_owner):
        assert owner("plumless", 7) != owner("buckeroo", 7)
    names = [f"acct-{i:04d}" for i in range(5000)]
    assert len({session_owner(name, 1) for name in names}) == len(names)
    assert len({session_owner("a", 1), system_owner("a", 1), trace_owner("a", 1)}) == 3


@pytest.mark.parametrize(
    "mix",
    [{"standard": 1.0}, {"standard": 0.9, "priority": 0.1}, {"priority": 0.2, "batch": 0.8}],
)
def test_a_session_draws_the_tiers_and_stream_position_of_the_array_draw(
    mix: dict[str, float],
) -> None:
    traffic = _scenario().traffic[0].model_copy(update={"tier_mix": mix})
    context = SourceContext(
        Clock(), 3, 300.0, 16, 10, None, itertools.count().__next__, print, RetryConfig()
    )
    tiers = TierDraw(traffic, context)
    for seed in range(20):
        listed, batched = np.random.default_rng(seed), np.random.default_rng(seed)
        for n in (1, 4, 30):
            assert tiers.draw_list(n, listed) == tiers.draw(n, batched).tolist()
        assert listed.random() == batched.random()
