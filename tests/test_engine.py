"""Whole runs: reproducibility, skipping versus step by step, independence of traffic sources."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from helpers import columns_equal, tables_equal

from sim.engine import simulate
from sim.results.summary import summarize
from sim.scenario import Scenario


def _random_scenario(seed: int, **extra: object) -> Scenario:
    rng = np.random.default_rng(seed)
    return Scenario.model_validate(
        {
            "name": "random",
            "seed": seed,
            "duration_s": 90,
            "models": {
                "m": {
                    "architecture": str(rng.choice(["llama-3.1-8b", "qwen2.5-32b"])),
                    "pools": {
                        "p": {
                            "gpu": str(rng.choice(["h100", "a100"])),
                            "gpus_per_replica": int(rng.choice([1, 2])),
                            "replicas": int(rng.integers(1, 4)),
                            "max_num_seqs": int(rng.integers(4, 64)),
                            "max_batched_tokens": int(rng.choice([512, 2048])),
                            "kv_capacity_tokens": int(rng.integers(20_000, 200_000)),
                        }
                    },
                    "routing": {"policy": str(rng.choice(["round_robin", "least_loaded"]))},
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {
                        "process": "gamma",
                        "rate_per_s": float(rng.uniform(2, 12)),
                        "cv": 2,
                    },
                    "prompt_tokens": {
                        "dist": "lognormal",
                        "median": 600,
                        "sigma": 1.0,
                        "max": 8000,
                    },
                    "output_tokens": {
                        "dist": "lognormal",
                        "median": 150,
                        "sigma": 0.8,
                        "max": 1500,
                    },
                    "tier_mix": {"standard": 0.7, "priority": 0.2, "batch": 0.1},
                }
            ],
            **extra,
        }
    )


INTEGER_COLUMNS = (
    "request_id",
    "replica",
    "status",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "preemptions",
)
TIME_COLUMNS = ("arrival_s", "admitted_s", "first_token_s", "finished_s")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_event_skipping_gives_the_step_by_step_records(seed: int) -> None:
    fast = simulate(_random_scenario(seed)).requests.sort_by("request_id")
    slow = simulate(_random_scenario(seed, step_by_step=True)).requests.sort_by("request_id")
    assert fast.num_rows == slow.num_rows > 50
    for column in (*INTEGER_COLUMNS, "tier", "pool"):
        assert columns_equal(fast[column], slow[column]), column
    for column in TIME_COLUMNS:
        np.testing.assert_allclose(
            fast[column].to_numpy(), slow[column].to_numpy(), rtol=1e-9, atol=1e-9
        )


def test_same_seed_same_results_and_another_seed_differs() -> None:
    first = simulate(_random_scenario(5))
    again = simulate(_random_scenario(5))
    assert tables_equal(first.requests, again.requests)
    assert tables_equal(first.timeseries, again.timeseries)  # empty intervals: NaN hit ratio
    scenario = _random_scenario(5)
    other = simulate(scenario.model_copy(update={"seed": 6}))
    assert not tables_equal(first.requests, other.requests)
    s1 = summarize(first.requests, first.timeseries, 0, 90)
    s2 = summarize(again.requests, again.timeseries, 0, 90)
    assert s1 == s2


def test_adding_a_traffic_source_leaves_the_others_draws_unchanged() -> None:
    base = _random_scenario(8)
    data = base.model_dump(by_alias=True)
    extra = dict(data["traffic"][0], name="another")
    data["traffic"] = [extra, *data["traffic"]]  # before the original, to move it in the list
    data["models"]["m"]["pools"]["p"]["replicas"] = 3
    bigger = Scenario.model_validate(data)

    def drawn(table: pa.Table) -> list[tuple[float, int, int, str]]:
        t = table.filter(pa.compute.equal(table["traffic"], "t")).sort_by("arrival_s")
        return list(
            zip(
                t["arrival_s"].to_pylist(),
                t["prompt_tokens"].to_pylist(),
                t["completion_tokens"].to_pylist(),
                t["tier"].to_pylist(),
                strict=True,
            )
        )

    assert drawn(simulate(base).requests) == drawn(simulate(bigger).requests)


def test_fast_variant_has_its_own_pool_and_tier() -> None:
    data = _random_scenario(9).model_dump(by_alias=True)
    base = data["models"]["m"]
    speculative = {"model": "roofline", "draft_tokens": 3, "acceptance_rate": 0.7}
    pool = dict(base["pools"]["p"], replicas=1, perf=speculative)
    turbo = {"architecture": base["architecture"], "fast_of": "m", "pools": {"fast": pool}}
    data["models"]["m-turbo"] = turbo
    data["traffic"].append(dict(data["traffic"][0], name="fast", model="m-turbo"))
    requests = simulate(Scenario.model_validate(data)).requests
    tier = requests["tier"].to_numpy(zero_copy_only=False)
    pool_name = requests["pool"].to_numpy(zero_copy_only=False)
    model = requests["model"].to_numpy(zero_copy_only=False)
    assert set(tier[model == "m-turbo"]) == {"fast"} and set(pool_name[model == "m-turbo"]) == {
        "fast"
    }
    assert "fast" not in set(tier[model == "m"])
    tpot = requests["tpot_s"].to_numpy()
    # Speculative decoding (3 drafts, 70% acceptance) emits about 2.5 tokens per step.
    assert np.nanmedian(tpot[model == "m-turbo"]) < np.nanmedian(tpot[model == "m"])
