"""Common random numbers: the workload (arrivals, lengths, tiers, sessions and their turns,
think times, and slot-model service times) is the same whatever the routing or the fleet, so a
comparison credits differences to the policy, not to workload noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sim.engine import simulate
from sim.scenario import Scenario


def _scenario(replicas: int, routing: str) -> Scenario:
    session_source: dict[str, Any] = {
        "name": "chat",
        "account": "a",
        "model": "m",
        "arrivals": {"process": "poisson", "rate_per_s": 1.5},
        "sessions": {
            "turns": {"dist": "lognormal", "median": 4, "sigma": 0.5, "max": 12},
            "think_time_s": {"dist": "exponential", "mean_s": 3},
        },
        "prompt_tokens": {"dist": "lognormal", "median": 200, "sigma": 0.8, "max": 3000},
        "output_tokens": {"dist": "lognormal", "median": 100, "sigma": 0.6, "max": 1000},
        "tier_mix": {"standard": 0.7, "priority": 0.2, "batch": 0.1},
        "affinity": "session",
    }
    open_source: dict[str, Any] = {
        "name": "api",
        "account": "a",
        "model": "m",
        "arrivals": {"process": "poisson", "rate_per_s": 3},
        "prompt_tokens": {"dist": "lognormal", "median": 300, "sigma": 0.8, "max": 3000},
        "output_tokens": {"dist": "lognormal", "median": 80, "sigma": 0.6, "max": 1000},
        "tier_mix": {"standard": 0.8, "batch": 0.2},
    }
    return Scenario.model_validate(
        {
            "name": "crn",
            "seed": 11,
            "duration_s": 120,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {
                        "p": {
                            "replicas": replicas,
                            "max_num_seqs": 2,
                            "perf": {"model": "exponential", "mean_service_s": 0.5},
                            # The small fleet queues long: no shedding, so no retries.
                            "shed_standard_after_s": None,
                            "shed_priority_after_s": None,
                        }
                    },
                    "routing": {"policy": routing},
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [session_source, open_source],
        }
    )


def _by_identity(table: pa.Table) -> dict[tuple, dict[str, Any]]:
    """Served rows keyed by what the workload says they are: (source, session, turn) for session
    turns, (source, arrival order) for open-loop requests."""
    rows = table.filter(pc.equal(table["status"], 200)).to_pylist()
    keyed: dict[tuple, dict[str, Any]] = {}
    open_loop = sorted((r for r in rows if r["session_id"] < 0), key=lambda r: r["arrival_s"])
    for r in open_loop:
        keyed[(r["traffic"], "open", r["arrival_s"])] = r
    for r in rows:
        if r["session_id"] >= 0:
            keyed[(r["traffic"], r["session_id"], r["turn"])] = r
    return keyed


def test_workload_is_the_same_across_routing_and_replicas() -> None:
    runs = [
        simulate(_scenario(2, "affinity")).requests,
        simulate(_scenario(3, "least_loaded")).requests,
        simulate(_scenario(5, "random")).requests,
    ]
    keyed = [_by_identity(t) for t in runs]
    # The fleets differ enough that the runs differ: queueing, and so session turn times.
    queue = [float(np.nanmean(t["queue_s"].to_numpy(zero_copy_only=False))) for t in runs]
    assert queue[0] > 2 * queue[2]
    base = keyed[0]
    for other in keyed[1:]:
        common = base.keys() & other.keys()
        assert len(common) > 0.9 * len(base)
        for key in common:
            a, b = base[key], other[key]
            for column in ("prompt_tokens", "completion_tokens", "tier", "attempt"):
                assert a[column] == b[column], (key, column)
            # The work a request needs does not depend on the replica that serves it.
            assert a["finished_s"] - a["admitted_s"] == pytest.approx(
                b["finished_s"] - b["admitted_s"], abs=1e-9
            )
            if a["turn"] <= 1:
                assert a["arrival_s"] == b["arrival_s"]
        # A later turn comes one think time after the previous answer: the same think time.
        for key in common:
            source, session, turn = key
            previous = (source, session, turn - 1)
            if session == "open" or turn <= 1 or previous not in common:
                continue
            gap_a = base[key]["arrival_s"] - base[previous]["finished_s"]
            gap_b = other[key]["arrival_s"] - other[previous]["finished_s"]
            assert gap_a == pytest.approx(gap_b, abs=1e-9)
