"""The scenario YAML as validated, frozen pydantic models.

Every number PLATFORM.md marks as a default is a field here with that default. Loading is in
`sim.scenario_loader`, which turns validation errors into messages with YAML line numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from sim.config_base import StrictModel
from sim.perf.config import ExponentialPerf, FixedPerf, PerfConfig, RooflinePerf
from sim.routing import RoutingConfig
from sim.routing.least_loaded import LeastLoadedConfig
from sim.units import PositiveSeconds, Seconds
from sim.workload.arrivals import ArrivalProcess
from sim.workload.distributions import LengthDist
from sim.workload.sessions import SessionConfig
from sim.workload.traces import TraceConfig

Tier = Literal["standard", "priority", "batch"]
SpendTier = Literal[1, 2, 3, 4, "unlimited"]
ALL_TIERS: list[Tier] = ["standard", "priority", "batch"]


def _standard_only() -> dict[Tier, float]:
    return {"standard": 1.0}


def _shares_sum_to_one(shares: dict[Tier, float]) -> dict[Tier, float]:
    """shares sum to 1"""  # also the rule docs/scenarios.md shows
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"shares must sum to 1, they sum to {total:g}")
    return shares


class Pool(StrictModel):
    """Identical replicas of one model on one GPU type."""

    gpu: str = Field("h100", description="GPU type from the catalog (`capsim perf` lists them)")
    gpus_per_replica: int = Field(1, ge=1, description="GPUs per replica (tensor parallel degree)")
    replicas: int = Field(1, ge=1, description="Number of replicas in the pool")
    max_num_seqs: int = Field(256, ge=1, description="Most requests running at once on a replica")
    max_batched_tokens: int = Field(
        8192, ge=1, description="Token budget of one iteration, tokens (chunked prefill)"
    )
    block_size: int = Field(16, ge=1, description="KV-cache block, tokens")
    memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of GPU memory usable for weights and KV cache"
    )
    prefix_caching: bool = Field(
        True, description="Reuse cached prompt prefixes (on for every model of the platform)"
    )
    kv_capacity_tokens: int | None = Field(
        None, ge=1, description="Override the KV capacity derived from memory, tokens per replica"
    )
    perf: Annotated[PerfConfig, Field(discriminator="model")] = Field(
        default_factory=RooflinePerf,
        description="Iteration-time model: roofline, fixed, exponential",
    )
    tiers: list[Tier] = Field(
        default_factory=lambda: list(ALL_TIERS),
        min_length=1,
        description="Tiers this pool serves (the first pool listing a tier serves it)",
    )

    @property
    def slot_model(self) -> bool:
        """True when requests hold slots for a drawn time instead of being batched on a GPU."""
        return isinstance(self.perf, FixedPerf | ExponentialPerf)


class Model(StrictModel):
    """A model id clients send, served by one or more pools."""

    architecture: str = Field(description="Architecture from the model catalog")
    fast: bool = Field(
        False, description="A Fast variant (its own pool and limits); its requests have tier fast"
    )
    pools: dict[str, Pool] = Field(min_length=1, description="Pools by name")
    routing: RoutingConfig = Field(
        default_factory=lambda: LeastLoadedConfig(policy="least_loaded"),
        description="Replica choice within a pool",
    )


class Account(StrictModel):
    name: str = Field(min_length=1, description="Account (API key) name")
    spend_tier: SpendTier = Field(1, description="Spend tier: 1, 2, 3, 4 or unlimited")
    users: int = Field(
        1, ge=1, description="End users behind the key (distinct `user` fields for affinity)"
    )


class Traffic(StrictModel):
    """A traffic source: open-loop requests (arrivals on a schedule whatever happens),
    closed-loop sessions (`sessions`: the next turn only after the previous answer), or a
    replayed trace (`trace` in place of `arrivals`, `prompt_tokens` and `output_tokens`)."""

    name: str = Field(min_length=1, description="Source name (a column in the results)")
    account: str = Field(description="Account sending the requests")
    model: str = Field(description="Model id the requests are sent to")
    arrivals: ArrivalProcess | None = Field(
        None, description="Arrival process of requests (of session starts with `sessions`)"
    )
    prompt_tokens: LengthDist | None = Field(
        None, description="Prompt length, tokens (with `sessions`: each turn's new message)"
    )
    output_tokens: LengthDist | None = Field(None, description="Generated length, tokens")
    sessions: SessionConfig | None = Field(None, description="Multi-turn sessions (closed loop)")
    trace: TraceConfig | None = Field(
        None, description="Replay a trace file instead of arrivals and length distributions"
    )
    affinity: Literal["session", "user", "none"] | None = Field(
        None,
        description="Sticky-routing key sent: the session id, the account's user id, or none "
        "(null: session for session traffic, else none)",
    )
    tier_mix: Annotated[
        dict[Tier, Annotated[float, Field(ge=0)]], AfterValidator(_shares_sum_to_one)
    ] = Field(
        default_factory=_standard_only,
        description="Share of requests per tier (standard, priority, batch); shares sum to 1",
    )
    max_requests: int | None = Field(
        None, ge=1, description="Arrivals stop after this many requests (null: no limit)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Traffic:
        generated = ("arrivals", "prompt_tokens", "output_tokens")
        if self.trace is not None:
            clash = [name for name in (*generated, "sessions") if getattr(self, name) is not None]
            if clash:
                raise ValueError(f"a trace replaces {', '.join(clash)}: give one or the other")
        else:
            missing = [name for name in generated if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a traffic source needs {', '.join(missing)} (or a trace)")
        if self.affinity is None:
            object.__setattr__(self, "affinity", "session" if self.sessions else "none")
        if self.affinity == "session" and self.sessions is None:
            raise ValueError("affinity: session needs `sessions` (or use user or none)")
        return self


class Scenario(StrictModel):
    name: str = Field(min_length=1, description="Scenario name (default results folder name)")
    description: str = Field("", description="What question the scenario answers")
    seed: int = Field(
        0, ge=0, description="Root seed: the same scenario and seed give identical results"
    )
    duration_s: Seconds = Field(
        gt=0, description="Simulated seconds of arrivals, s (or '30m', '2h')"
    )
    warmup_s: Seconds = Field(0.0, ge=0, description="Excluded from summary statistics, s")
    drain_s: Seconds = Field(
        3600.0,
        ge=0,
        description="After arrivals stop, most simulated time to finish in-flight work, s",
    )
    sample_interval_s: PositiveSeconds | None = Field(
        None,
        description="Time-series sampling period, s (null: duration / 300, at least 1 s)",
    )
    step_by_step: bool = Field(
        False, description="Run every iteration as an event (the exactness reference; slow)"
    )
    models: dict[str, Model] = Field(min_length=1, description="Served models by model id")
    accounts: list[Account] = Field(min_length=1, description="Accounts (API keys)")
    traffic: list[Traffic] = Field(min_length=1, description="Traffic sources")

    @model_validator(mode="after")
    def _warmup_inside(self) -> Scenario:
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"warmup_s ({self.warmup_s:g}) must be shorter than "
                f"duration_s ({self.duration_s:g})"
            )
        return self

    @property
    def sample_period_s(self) -> float:
        if self.sample_interval_s is not None:
            return self.sample_interval_s
        return max(1.0, self.duration_s / 300)


def cross_reference_errors(scenario: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Checks that span sections: (path, message) for each name that points nowhere."""
    from sim.perf.catalog import architecture_names, gpu_names

    errors: list[tuple[tuple[Any, ...], str]] = []
    accounts = [a.name for a in scenario.accounts]
    for i, account in enumerate(accounts):
        if account in accounts[:i]:
            errors.append((("accounts", i, "name"), f"duplicate account name {account!r}"))
    names = [t.name for t in scenario.traffic]
    for i, source in enumerate(scenario.traffic):
        if source.name in names[:i]:
            errors.append((("traffic", i, "name"), f"duplicate traffic name {source.name!r}"))
        if source.account not in accounts:
            errors.append(
                (
                    ("traffic", i, "account"),
                    f"unknown account {source.account!r}; {_one_of(accounts)}",
                )
            )
        if source.trace is not None and not Path(source.trace.path).is_file():
            errors.append((("traffic", i, "trace", "path"), f"no such file: {source.trace.path}"))
        model = scenario.models.get(source.model)
        if model is None:
            errors.append(
                (
                    ("traffic", i, "model"),
                    f"unknown model {source.model!r}; {_one_of(scenario.models)}",
                )
            )
            continue
        for tier, share in source.tier_mix.items():
            if (
                share > 0
                and not model.fast
                and not any(tier in p.tiers for p in model.pools.values())
            ):
                errors.append(
                    (
                        ("traffic", i, "tier_mix", tier),
                        f"no pool of model {source.model!r} serves {tier}",
                    )
                )
    for model_id, model in scenario.models.items():
        if model.architecture not in architecture_names():
            errors.append(
                (
                    ("models", model_id, "architecture"),
                    f"unknown architecture {model.architecture!r}; {_one_of(architecture_names())}",
                )
            )
        block_sizes = {pool.block_size for pool in model.pools.values()}
        if len(block_sizes) > 1:
            errors.append(
                (
                    ("models", model_id, "pools"),
                    f"all pools of a model share one block_size, got {sorted(block_sizes)}",
                )
            )
        for pool_name, pool in model.pools.items():
            if pool.gpu not in gpu_names():
                errors.append(
                    (
                        ("models", model_id, "pools", pool_name, "gpu"),
                        f"unknown gpu {pool.gpu!r}; {_one_of(gpu_names())}",
                    )
                )
            elif model.architecture in architecture_names() and not pool.slot_model:
                problem = _memory_problem(model.architecture, pool)
                if problem:
                    errors.append(
                        (("models", model_id, "pools", pool_name, "gpus_per_replica"), problem)
                    )
    return errors


def _memory_problem(architecture: str, pool: Pool) -> str | None:
    """Why the model's weights (or its KV cache) do not fit on the pool's replica, if so."""
    from sim.errors import InputError
    from sim.perf.roofline import build_batch_time_model

    if pool.kv_capacity_tokens is not None:
        return None  # the user states the capacity
    assert isinstance(pool.perf, RooflinePerf)
    try:
        model = build_batch_time_model(architecture, pool.gpu, pool.gpus_per_replica, pool.perf)
        blocks = model.kv_capacity_tokens(pool.memory_utilization) // pool.block_size
    except InputError as error:
        return str(error)
    return None if blocks > 0 else "no room for a single KV block after the weights"


def _one_of(names: Any) -> str:
    return "allowed: " + ", ".join(repr(n) for n in names)
