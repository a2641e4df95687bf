"""Small builders shared by tests: scenarios as dicts, validated without the YAML layer, and a
hand-computable iteration-time model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sim.replica.schedulers import SCHEDULERS, build_scheduler
from sim.replica.schedulers.base import Scheduler
from sim.scenario import Scenario


def scheduler(policy: str = "strict_priority", **fields: Any) -> Scheduler:
    """A replica scheduler as a pool's `scheduler:` section would build it."""
    return build_scheduler(SCHEDULERS[policy].Config(policy=policy, **fields))


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


class HandModel:
    """10 ms per iteration + 1 ms per decoding sequence + 0.01 ms per context token of the
    decodes + 0.1 ms per prefill token: round numbers to compute the log by hand."""

    def decode_lines(self, decode_seqs: int) -> tuple[tuple[float, float], ...]:
        return ((0.010 + 0.001 * decode_seqs, 0.00001),)

    def iteration_time_s(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        prefill = sum(chunk for chunk, _ in prefill_chunks)
        return 0.010 + 0.001 * decode_seqs + 0.00001 * decode_context_tokens + 0.0001 * prefill


def columns_equal(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> bool:
    """Same type, nulls and values, with NaN equal to NaN: Arrow's `equals` treats NaN as
    unequal to itself, so two identical float columns with a NaN compare different."""
    if not a.type.equals(b.type) or len(a) != len(b):
        return False
    if not pa.types.is_floating(a.type):
        return bool(a.equals(b))
    a_null, b_null = (np.asarray(x.is_null()) for x in (a, b))
    if not np.array_equal(a_null, b_null):
        return False
    a_values, b_values = (np.asarray(x.fill_null(0.0)) for x in (a, b))
    return bool(np.array_equal(a_values, b_values, equal_nan=True))


def tables_equal(a: pa.Table, b: pa.Table) -> bool:
    """`Table.equals` with NaN equal to NaN (see `columns_equal`); schema metadata ignored."""
    return a.schema.equals(b.schema) and all(
        columns_equal(a[name], b[name]) for name in a.column_names
    )
