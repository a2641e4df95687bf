"""The provider's economics of a run: what each pool's GPUs cost over the measured window,
what the attempts it served in that window earned, and the margin (definitions:
docs/economics.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sim.scenario import Scenario
from sim.status import STATUS_OK

TOKENS_PER_MILLION = 1e6
TOKEN_KINDS = ("input", "cached", "output")  # uncached prompt, cached prompt, generated
COLUMNS = (
    "status",
    "finished_s",
    "model",
    "pool",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_usd",
)


def economics(scenario: Scenario, requests: pa.Table, summary: dict[str, Any]) -> dict[str, Any]:
    """Per pool, per model and for the whole fleet: GPU-hours held, fleet cost, revenue, margin,
    cost and revenue per million tokens of each kind, utilisation. GPU-hours come from the
    summary's replica-hours (measured window, starting and draining replicas included); revenue
    and tokens from the attempts served that finished in the same window."""
    warmup_s, duration_s = summary["warmup_s"], summary["duration_s"]
    finished = requests["finished_s"].to_numpy()
    in_window = (
        (requests["status"].to_numpy() == STATUS_OK)
        & (finished >= warmup_s)
        & (finished < duration_s)
    )
    model = requests["model"].to_numpy(zero_copy_only=False)
    pool = requests["pool"].to_numpy(zero_copy_only=False)
    prompt = requests["prompt_tokens"].to_numpy()
    cached = requests["cached_tokens"].to_numpy()
    output = requests["completion_tokens"].to_numpy()
    revenue = requests["cost_usd"].to_numpy()
    replica_usd = usd_per_replica_hour(scenario)
    pools = []
    for row in summary["pools"]:
        config = scenario.models[row["model"]].pools[row["pool"]]
        price = scenario.gpu_prices_usd_per_hour[config.gpu]
        rows = in_window & (model == row["model"]) & (pool == row["pool"])
        gpu_hours = row["replica_hours"] * config.gpus_per_replica
        cost_usd = row["replica_hours"] * replica_usd[row["model"], row["pool"]]
        tokens = {
            "input": int((prompt[rows] - cached[rows]).sum()),
            "cached": int(cached[rows].sum()),
            "output": int(output[rows].sum()),
        }
        pools.append(
            {
                "model": row["model"],
                "pool": row["pool"],
                "gpu": config.gpu,
                "gpus_per_replica": config.gpus_per_replica,
                "gpu_price_usd_per_hour": price,
                "utilisation": row["utilisation"],
                **_money(gpu_hours, cost_usd, float(revenue[rows].sum()), tokens),
            }
        )
    return {
        "measured_window_s": duration_s - warmup_s,
        "gpu_prices_usd_per_hour": dict(scenario.gpu_prices_usd_per_hour),
        "pools": pools,
        "models": {
            name: _totals([p for p in pools if p["model"] == name])
            for name in sorted({p["model"] for p in pools})
        },
        "fleet": _totals(pools),
    }


def usd_per_replica_hour(scenario: Scenario) -> dict[tuple[str, str], float]:
    """What a replica of each (model id, pool) costs per hour held: its GPUs at their price."""
    return {
        (model_id, name): pool.gpus_per_replica * scenario.gpu_prices_usd_per_hour[pool.gpu]
        for model_id, model in scenario.models.items()
        for name, pool in model.pools.items()
    }


def _money(
    gpu_hours: float, cost_usd: float, revenue_usd: float, tokens: dict[str, int]
) -> dict[str, Any]:
    """The money figures of a pool or of the fleet: per million tokens of a kind means the whole
    cost (or revenue) over that kind's tokens alone, so revenue minus cost per million output
    tokens is the margin per million output tokens."""
    return {
        "gpu_hours": gpu_hours,
        "cost_usd": cost_usd,
        "revenue_usd": revenue_usd,
        "margin_usd": revenue_usd - cost_usd,
        "margin_fraction": (revenue_usd - cost_usd) / revenue_usd if revenue_usd else None,
        "tokens": tokens,
        "cost_usd_per_mtok": _per_mtok(cost_usd, tokens),
        "revenue_usd_per_mtok": _per_mtok(revenue_usd, tokens),
    }


def _per_mtok(usd: float, tokens: dict[str, int]) -> dict[str, float | None]:
    """USD per million tokens of each kind; None where no token of the kind was served."""
    return {
        kind: usd / tokens[kind] * TOKENS_PER_MILLION if tokens[kind] else None
        for kind in TOKEN_KINDS
    }


def _totals(pools: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a model's pools or of the fleet; utilisation is the pools' weighted by their
    GPU-hours."""
    gpu_hours = sum(p["gpu_hours"] for p in pools)
    tokens = {kind: sum(p["tokens"][kind] for p in pools) for kind in TOKEN_KINDS}
    weights = np.array([p["gpu_hours"] for p in pools])
    busy = np.array([p["utilisation"] for p in pools])
    return {
        "utilisation": float((weights * busy).sum() / weights.sum()) if weights.sum() else 0.0,
        **_money(
            gpu_hours,
            sum(p["cost_usd"] for p in pools),
            sum(p["revenue_usd"] for p in pools),
            tokens,
        ),
    }
