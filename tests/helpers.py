"""Small builders shared by tests: scenarios as dicts, validated without the YAML layer."""

from __future__ import annotations

from typing import Any

from sim.scenario import Scenario


def slot_scenario(
    servers: int,
    arrival_rate: float,
    mean_service_s: float,
    duration_s: float,
    seed: int,
    **extra: Any,
) -> Scenario:
    """One replica as an M/M/c queue: exponential service on `servers` slots, Poisson arrivals."""
    return Scenario.model_validate(
        {
            "name": "mmc",
            "seed": seed,
            "duration_s": duration_s,
            "warmup_s": duration_s * 0.1,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {
                        "p": {
                            "replicas": 1,
                            "max_num_seqs": servers,
                            "perf": {"model": "exponential", "mean_service_s": mean_service_s},
                        }
                    },
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": arrival_rate},
                    "prompt_tokens": {"dist": "constant", "value": 100},
                    "output_tokens": {"dist": "constant", "value": 10},
                }
            ],
            **extra,
        }
    )


def on_the_second_scenario() -> Scenario:
    """Arrivals every second on the second (100-token prompts), admitted at once by an idle
    replica, sampled every second for 20 s: every admission falls on a sample time."""
    return Scenario.model_validate(
        {
            "name": "ties",
            "duration_s": 20,
            "sample_interval_s": 1,
            "models": {"m": {"architecture": "llama-3.1-8b", "pools": {"p": {"replicas": 1}}}},
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "constant", "rate_per_s": 1},
                    "prompt_tokens": {"dist": "constant", "value": 100},
                    "output_tokens": {"dist": "constant", "value": 5},
                }
            ],
        }
    )
