"""Settings a slot model (perf model fixed or exponential) cannot honour are input errors
naming the setting and why; before, they were ignored and the run reported a 0% hit ratio."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sim.errors import InputError
from sim.scenario_loader import parse_scenario


def _text(pool: dict[str, Any], routing: dict[str, Any] | None = None) -> str:
    model: dict[str, Any] = {
        "architecture": "llama-3.1-8b",
        "pools": {"p": {"perf": {"model": "fixed", "service_s": 1.0}, **pool}},
    }
    if routing is not None:
        model["routing"] = routing
    return yaml.safe_dump(
        {
            "name": "slots",
            "duration_s": 10,
            "models": {"m": model},
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 1},
                    "prompt_tokens": {"dist": "constant", "value": 10},
                    "output_tokens": {"dist": "constant", "value": 10},
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("setting", "why"),
    [
        ({"kv_capacity_tokens": 1000}, "has no KV memory"),
        ({"prefix_caching": True}, "has no prefix cache"),
        ({"block_size": 32}, "has no KV blocks"),
        ({"memory_utilization": 0.5}, "has no GPU memory"),
        ({"max_batched_tokens": 4096}, "runs no iterations"),
    ],
)
def test_a_slot_model_refuses_cache_and_memory_settings(setting: dict[str, Any], why: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_scenario(_text(setting), "x.yaml")
    field = next(iter(setting))
    assert f"models.m.pools.p.{field}: perf model fixed {why}" in str(caught.value)
    assert f"cannot honour {field}" in str(caught.value)


@pytest.mark.parametrize(
    "routing",
    [
        {"policy": "cache_aware"},
        {"policy": "weighted_scorer"},
        {"policy": "weighted_scorer", "weights": {"prefix": 0, "kv": 0.5}},
    ],
)
def test_cache_aware_routing_over_a_slot_model_is_refused(routing: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"models\.m\.routing\.policy: .* pool 'p' \(perf model"):
        parse_scenario(_text({}, routing), "x.yaml")


def test_what_a_slot_model_does_is_accepted() -> None:
    parse_scenario(_text({"prefix_caching": False, "max_num_seqs": 4}), "x.yaml")
    parse_scenario(_text({"block_size": 16, "max_batched_tokens": 8192}), "x.yaml")  # defaults
    routing = {"policy": "weighted_scorer", "weights": {"prefix": 0, "kv": 0}}
    parse_scenario(_text({}, routing), "x.yaml")
    parse_scenario(_text({}, {"policy": "least_loaded"}), "x.yaml")
