"""Overload shedding: Standard is shed (503) before Priority, Priority keeps its TTFT, Batch
waits; shedding off sheds nothing; bad thresholds are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.engine import Simulation, simulate
from sim.errors import InputError
from sim.gateway.shedding import SheddingCheck
from sim.scenario import Scenario
from sim.scenario_loader import parse_scenario
from sim.status import STATUS_OK, STATUS_SHED

QUICKSTART = (Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml").read_text()


def _overloaded(**pool: Any) -> Scenario:
    """4 slots of 1 s service offered 8 attempts/s: twice the capacity for two minutes."""
    return Scenario.model_validate(
        {
            "name": "shed",
            "seed": 2,
            "duration_s": 120,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {
                        "p": {"max_num_seqs": 4, "perf": {"model": "fixed", "service_s": 1}, **pool}
                    },
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 8},
                    "prompt_tokens": {"dist": "constant", "value": 100},
                    "output_tokens": {"dist": "constant", "value": 10},
                    "tier_mix": {"standard": 0.6, "priority": 0.3, "batch": 0.1},
                }
            ],
            "retry": {"max_attempts": 2},
        }
    )


def _by_tier(scenario: Scenario) -> dict[str, dict[str, np.ndarray]]:
    table = simulate(scenario).requests
    tier = table["tier"].to_numpy(zero_copy_only=False)
    cols = {n: table[n].to_numpy() for n in ("status", "arrival_s", "ttft_s")}
    return {t: {n: v[tier == t] for n, v in cols.items()} for t in set(tier)}


def test_standard_is_shed_first_and_priority_keeps_its_ttft() -> None:
    tiers = _by_tier(_overloaded(shed_standard_after_s=5, shed_priority_after_s=20))
    standard, priority, batch = tiers["standard"], tiers["priority"], tiers["batch"]
    shed = standard["status"] == STATUS_SHED
    assert shed.mean() > 0.2  # the pool is twice overloaded: much of Standard is refused
    first_priority_shed = priority["arrival_s"][priority["status"] == STATUS_SHED]
    if first_priority_shed.size:
        assert standard["arrival_s"][shed].min() < first_priority_shed.min()
    assert (batch["status"] != STATUS_SHED).all()  # Batch waits
    p99 = {
        name: np.percentile(t["ttft_s"][t["status"] == STATUS_OK], 99)
        for name, t in (("standard", standard), ("priority", priority))
    }
    assert p99["priority"] < p99["standard"]
    # Without shedding the Standard queue grows all along (to about a minute here).
    unshed = _by_tier(_overloaded(shed_standard_after_s=None, shed_standard_on_kv_full=False))
    waited = unshed["standard"]["ttft_s"][unshed["standard"]["status"] == STATUS_OK]
    assert p99["standard"] < np.percentile(waited, 99) / 2


def test_priority_threshold_below_standard_s_is_refused_naming_the_field() -> None:
    text = QUICKSTART.replace("shed_standard_after_s: 10", "shed_standard_after_s: 20")
    text = text.replace("shed_priority_after_s: 30", "shed_priority_after_s: 5")
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml")
    message = str(caught.value)
    assert message.startswith("x.yaml:") and "models.llama-8b.pools.standard" in message
    assert "shed_priority_after_s (5) must be at least shed_standard_after_s (20)" in message


def test_the_check_watches_only_pools_that_set_a_rule() -> None:
    """A pool without shedding rules costs its attempts nothing at the front door."""
    checks = Simulation(_overloaded()).gateway.checks
    assert not any(isinstance(check, SheddingCheck) for check in checks)
    checks = Simulation(_overloaded(shed_priority_after_s=20)).gateway.checks
    assert any(isinstance(check, SheddingCheck) and check.active for check in checks)
