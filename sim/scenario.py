"""The scenario YAML as validated, frozen pydantic models.

Every number PLATFORM.md marks as a default is a field here with that default. Loading is in
`sim.scenario_loader`, which turns validation errors into messages with YAML line numbers.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from sim.config_base import StrictModel
from sim.gateway.config import (
    Billing,
    Prices,
    RateLimits,
    SpendTier,
    SpendTierConfig,
    default_spend_tiers,
    merge_spend_tiers,
)
from sim.gateway.limits import LimitsConfig
from sim.perf.config import RooflinePerf
from sim.replica.config import Pool
from sim.request import ALL_TIERS
from sim.routing import RoutingConfig
from sim.routing.least_loaded import LeastLoadedConfig
from sim.routing.weighted_scorer import WeightedScorerConfig
from sim.units import NonNegativeSeconds, PositiveSeconds, Seconds
from sim.workload.config import BatchJob, Traffic
from sim.workload.retry import RetryConfig

# USD per GPU-hour: positive and finite.
GpuPrice = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Model(StrictModel):
    """A model id clients send, served by one or more pools."""

    architecture: str = Field(description="Architecture from the model catalog")
    fast_of: str | None = Field(
        None,
        description="Makes this model id a Fast variant of the model id named: it serves that "
        "model's weights (same architecture) on its own pool, with its own rate limits and "
        "prices, and its requests have tier fast (null: not a Fast variant)",
    )
    pools: dict[str, Pool] = Field(min_length=1, max_length=10_000, description="Pools by name")
    routing: RoutingConfig = Field(
        default_factory=lambda: LeastLoadedConfig(policy="least_loaded"),
        description="Replica choice within a pool",
    )
    retire_at_s: NonNegativeSeconds | None = Field(
        None,
        description="From this time on the model id answers 404, except to traffic that "
        "declares migrate_to (null: never retired)",
    )
    prices: Prices | None = Field(
        None,
        description="List prices, USD per million tokens (null: by model size, PLATFORM.md; a "
        "Fast variant: billing.fast_multiplier x its fast_of model's)",
    )

    @property
    def is_fast(self) -> bool:
        return self.fast_of is not None

    def pool_tiers(self, pool: Pool) -> list[str]:
        """The tiers a pool is given: a Fast variant's pools serve tier fast only."""
        return ["fast"] if self.is_fast else list(pool.tiers)

    def tier_pools(self) -> dict[str, str]:
        """Tier -> the pool serving it: the first pool given the tier."""
        served: dict[str, str] = {}
        for name, pool in self.pools.items():
            for tier in self.pool_tiers(pool):
                served.setdefault(tier, name)
        return served


class Account(StrictModel):
    name: str = Field(min_length=1, description="Account (API key) name")
    spend_tier: SpendTier = Field(1, description="Spend tier: 1, 2, 3, 4 or unlimited")
    users: int = Field(
        1,
        ge=1,
        le=10**9,
        description="End users behind the key (distinct `user` fields for affinity)",
    )
    limits: LimitsConfig | None = Field(
        None, description="Limit policy of this account (null: its spend tier's)"
    )
    monthly_budget_usd: float | None = Field(
        None, ge=0, description="Budget per budget period, USD (null: its spend tier's)"
    )
    spent_usd_at_start: float = Field(
        0.0, ge=0, description="Spent in the budget period before the run starts, USD"
    )
    payment_method: bool = Field(
        True, description="Has a payment method (false: the lower request cap)"
    )


class Scenario(StrictModel):
    name: str = Field(min_length=1, description="Scenario name (default results folder name)")
    description: str = Field("", description="What question the scenario answers")
    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Root seed: the same scenario and seed give identical results",
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
    models: dict[str, Model] = Field(
        min_length=1, max_length=10_000, description="Served models by model id"
    )
    accounts: list[Account] = Field(
        min_length=1, max_length=1_000_000, description="Accounts (API keys)"
    )
    traffic: list[Traffic] = Field(min_length=1, max_length=100_000, description="Traffic sources")
    batch_jobs: list[BatchJob] = Field(
        default_factory=list,
        max_length=100_000,
        description="Batch jobs: files of requests served on spare capacity at the Batch tier "
        "(docs/economics.md, Batch)",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,
        description="How clients retry 429 and 503, for sources without their own `retry`",
    )
    rate_limits: RateLimits | None = Field(
        None,
        description="Token limits and the request cap per account ({}: PLATFORM.md's adaptive "
        "limits; null: no rate limits, the run models the fleet alone)",
    )
    spend_tiers: dict[SpendTier, SpendTierConfig] = Field(
        default_factory=default_spend_tiers,
        description="Ceiling multiplier, budget and limit policy per spend tier (a tier not "
        "given, or a field not given, keeps its default)",
    )
    billing: Billing = Field(
        default_factory=Billing, description="Price multipliers and the budget period"
    )
    gpu_prices_usd_per_hour: dict[str, GpuPrice] = Field(
        default_factory=dict,
        validate_default=True,  # the default, too, is the catalog's prices
        description="What a GPU-hour costs the provider, USD, per GPU type: every cost figure "
        "(the summary's economics) prices GPU-hours with it; a type not given keeps the "
        "catalog's `price_per_gpu_hour_usd`",
    )

    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named variants for `capsim compare`: each maps dotted paths to values "
        "(as `--set`); the first is the baseline of the paired differences",
    )
    replications: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Runs per variant (compare), grid point (sweep) or fleet (plan), at seeds "
        "derived from `seed`; `capsim run` makes one run, at `seed`",
    )

    @field_validator("spend_tiers", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        return merge_spend_tiers(value)

    @field_validator("gpu_prices_usd_per_hour", mode="before")
    @classmethod
    def _over_catalog_prices(cls, value: Any) -> Any:
        """The catalog's prices, with the scenario's over them (the resolved scenario shows
        every GPU type's price as used)."""
        from sim.perf.catalog import get_gpu, gpu_names

        if not isinstance(value, dict):
            return value  # pydantic reports the wrong type
        return {name: get_gpu(name).price_per_gpu_hour_usd for name in gpu_names()} | value

    @model_validator(mode="after")
    def _warmup_inside(self) -> Scenario:
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"warmup_s ({self.warmup_s:g}) must be shorter than "
                f"duration_s ({self.duration_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _jobs_submitted_in_time(self) -> Scenario:
        for job in self.batch_jobs:
            if job.submit_at_s >= self.duration_s:
                raise ValueError(
                    f"batch job {job.name!r}: submit_at_s ({job.submit_at_s:g}) must be before "
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
    accounts: dict[str, int] = {}
    for i, account in enumerate(a.name for a in scenario.accounts):
        if account in accounts:
            errors.append((("accounts", i, "name"), f"duplicate account name {account!r}"))
        accounts.setdefault(account, i)
        if scenario.rate_limits is None and scenario.accounts[i].limits is not None:
            errors.append((("accounts", i, "limits"), _NO_RATE_LIMITS))
    for spend_tier, tier_config in scenario.spend_tiers.items():
        if scenario.rate_limits is None and tier_config.limits is not None:
            errors.append((("spend_tiers", spend_tier, "limits"), _NO_RATE_LIMITS))
    names: set[str] = set()
    for i, source in enumerate(scenario.traffic):
        if source.name in names:
            errors.append((("traffic", i, "name"), f"duplicate traffic name {source.name!r}"))
        names.add(source.name)
        trace = None if source.trace is None else ("trace", source.trace.path)
        errors.extend(
            _reference_errors(
                scenario, accounts, ("traffic", i), source.account, source.model, trace
            )
        )
        model = scenario.models.get(source.model)
        if model is None:
            continue
        if source.migrate_to is not None:
            errors.extend(_migration_errors(scenario, i, source))
        if model.is_fast and "tier_mix" in source.model_fields_set:
            named = ", ".join(t for t, share in source.tier_mix.items() if share > 0)
            errors.append(
                (
                    ("traffic", i, "tier_mix"),
                    f"model {source.model!r} is a Fast variant: its requests all have tier "
                    f"fast, so a tier_mix naming {named} cannot apply: remove tier_mix (or "
                    f"send these requests to {model.fast_of!r})",
                )
            )
        served = model.tier_pools()
        for tier, share in source.tier_mix.items():
            if share > 0 and not model.is_fast and tier not in served:
                errors.append(
                    (
                        ("traffic", i, "tier_mix", tier),
                        f"no pool of model {source.model!r} serves {tier}",
                    )
                )
    errors += _batch_job_errors(scenario, accounts, names)
    for gpu in scenario.gpu_prices_usd_per_hour:
        if gpu not in gpu_names():
            errors.append(
                (("gpu_prices_usd_per_hour", gpu), f"unknown gpu {gpu!r}; {_one_of(gpu_names())}")
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
        errors += _slot_model_problems(model_id, model)
        errors += _fast_variant_problems(scenario, model_id, model)
        errors += _unreached_pools(model_id, model)
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


def _reference_errors(
    scenario: Scenario,
    accounts: dict[str, int],
    at: tuple[Any, ...],
    account: str,
    model: str,
    file: tuple[str, str] | None,
) -> list[tuple[tuple[Any, ...], str]]:
    """What a traffic source or a batch job names: a known account, a known model and, where
    it reads one, an existing file (`file`: its field and path)."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if account not in accounts:
        errors.append(((*at, "account"), f"unknown account {account!r}; {_one_of(accounts)}"))
    if file is not None and not Path(file[1]).is_file():
        errors.append(((*at, file[0], "path"), f"no such file: {file[1]}"))
    if model not in scenario.models:
        errors.append(((*at, "model"), f"unknown model {model!r}; {_one_of(scenario.models)}"))
    return errors


def _batch_job_errors(
    scenario: Scenario, accounts: dict[str, int], traffic_names: set[str]
) -> list[tuple[tuple[Any, ...], str]]:
    """A job names a known account and a model with a pool that serves Batch; its name is
    its rows' `traffic` label, so it is unique among jobs and traffic sources."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    names = set(traffic_names)
    for i, job in enumerate(scenario.batch_jobs):
        if job.name in names:
            errors.append(
                (("batch_jobs", i, "name"), f"{job.name!r} already names a job or traffic source")
            )
        names.add(job.name)
        file = None if job.file is None else ("file", job.file.path)
        errors.extend(
            _reference_errors(scenario, accounts, ("batch_jobs", i), job.account, job.model, file)
        )
        model = scenario.models.get(job.model)
        if model is not None and (
            model.is_fast or not any("batch" in p.tiers for p in model.pools.values())
        ):
            why = "a Fast variant serves only its own tier" if model.is_fast else "no pool lists it"
            serving = [
                name
                for name, spec in scenario.models.items()
                if not spec.is_fast and any("batch" in p.tiers for p in spec.pools.values())
            ]
            allowed = _one_of(serving) if serving else "list batch in one of its pools' tiers"
            errors.append(
                (
                    ("batch_jobs", i, "model"),
                    f"model {job.model!r} does not serve the Batch tier ({why}); {allowed}",
                )
            )
    return errors


def _migration_errors(
    scenario: Scenario, i: int, source: Traffic
) -> list[tuple[tuple[Any, ...], str]]:
    """A migration must be able to happen and to land: the source's model retires, and the
    model it moves to serves its tiers with the same block size."""
    where = ("traffic", i, "migrate_to")
    old, new = scenario.models[source.model], scenario.models.get(source.migrate_to or "")
    if new is None:
        return [(where, f"unknown model {source.migrate_to!r}; {_one_of(scenario.models)}")]
    if old.retire_at_s is None:
        return [(where, f"model {source.model!r} has no retire_at_s: nothing to migrate from")]
    if source.migrate_to == source.model:
        return [(where, "a source cannot migrate to the model it already uses")]
    if new.is_fast != old.is_fast:
        return [
            (
                where,
                "a Fast variant migrates only to a Fast variant, and a standard id "
                "only to a standard id",
            )
        ]
    errors = []
    if {p.block_size for p in new.pools.values()} != {p.block_size for p in old.pools.values()}:
        errors.append((where, f"model {source.migrate_to!r} has another block_size"))
    for tier, share in source.tier_mix.items():
        if share > 0 and not new.is_fast and tier not in new.tier_pools():
            errors.append((where, f"no pool of model {source.migrate_to!r} serves {tier}"))
    return errors


def _fast_variant_problems(
    scenario: Scenario, model_id: str, model: Model
) -> list[tuple[tuple[Any, ...], str]]:
    """A Fast variant names a model that exists and is not itself a Fast variant, serves its
    weights, and sets nothing that only a standard model id uses."""
    if model.fast_of is None:
        return []
    where = ("models", model_id)
    base = scenario.models.get(model.fast_of)
    standard_ids = [name for name, m in scenario.models.items() if not m.is_fast]
    if model.fast_of == model_id:
        return [((*where, "fast_of"), "a model id cannot be a Fast variant of itself")]
    if base is None:
        return [((*where, "fast_of"), f"unknown model {model.fast_of!r}; {_one_of(standard_ids)}")]
    errors: list[tuple[tuple[Any, ...], str]] = []
    if base.fast_of is not None:
        errors.append(
            (
                (*where, "fast_of"),
                f"model {model.fast_of!r} is itself a Fast variant (of {base.fast_of!r}): name "
                f"the model whose weights both serve, {base.fast_of!r}",
            )
        )
    if base.architecture != model.architecture:
        errors.append(
            (
                (*where, "architecture"),
                f"a Fast variant serves the weights of the model it names ({model.fast_of!r}, "
                f"architecture {base.architecture!r}): its architecture must be the same, got "
                f"{model.architecture!r}",
            )
        )
    for name, pool in model.pools.items():
        if pool.tiers != ALL_TIERS:  # the default, as a copied scenario states it, is no choice
            errors.append(
                (
                    (*where, "pools", name, "tiers"),
                    "a Fast variant's pool serves its own requests only (tier fast), so tiers "
                    "cannot apply: remove it",
                )
            )
    return errors


def _unreached_pools(model_id: str, model: Model) -> list[tuple[tuple[Any, ...], str]]:
    """A pool that no tier reaches (each tier goes to the first pool given it) would sit idle
    while the scenario seems to count on it."""
    served = model.tier_pools()
    reached = set(served.values())
    errors: list[tuple[tuple[Any, ...], str]] = []
    for name, pool in model.pools.items():
        if name in reached:
            continue
        if model.is_fast:
            first = served["fast"]
            why = f"a Fast variant's requests (tier fast) all go to its first pool, {first!r}"
        else:
            taken = ", ".join(f"{t} to {served[t]!r}" for t in pool.tiers)
            why = (
                f"each tier it lists goes to an earlier pool ({taken}): give it a tier no "
                "earlier pool lists"
            )
        errors.append((("models", model_id, "pools", name), f"no tier reaches this pool: {why}"))
    return errors


_NO_RATE_LIMITS = "limits apply only with a rate_limits section (rate_limits: {} for the defaults)"


# Settings a slot model (perf model fixed or exponential) cannot honour: a request holds one of
# max_num_seqs slots for a drawn service time, with no GPU memory, blocks or iterations. Slot
# models exist to check the queueing core against closed-form theory (M/D/c, M/M/c); giving them
# a prefix cache would make service depend on cache state and break that correspondence, so these
# settings are refused rather than emulated.
_SLOT_MODEL_CANNOT = {
    "kv_capacity_tokens": "has no KV memory",
    "block_size": "has no KV blocks",
    "memory_utilization": "has no GPU memory",
    "max_batched_tokens": "runs no iterations with a token budget",
    "prefix_caching": "has no prefix cache",
    "batch_max_slowdown": "runs no iterations to lengthen",
    "batch_max_iteration_s": "runs no iterations",
}


def _slot_model_problems(model_id: str, model: Model) -> list[tuple[tuple[Any, ...], str]]:
    """Settings given for a slot-model pool, or a cache-aware router over one, that the slot
    model cannot honour."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    slot_pools = [name for name, pool in model.pools.items() if pool.slot_model]
    for name in slot_pools:
        pool = model.pools[name]
        for field in sorted(pool.model_fields_set & _SLOT_MODEL_CANNOT.keys()):
            if field == "prefix_caching":
                if not pool.prefix_caching:
                    continue  # off is what a slot model does
            elif getattr(pool, field) == Pool.model_fields[field].default:
                continue  # the default, as a copied scenario states it, asks for nothing
            errors.append(
                (
                    ("models", model_id, "pools", name, field),
                    f"perf model {pool.perf.model} {_SLOT_MODEL_CANNOT[field]} (a request holds "
                    "one of max_num_seqs slots for its service time), so it cannot honour "
                    f"{field}: remove it, or use perf model roofline",
                )
            )
    routing = model.routing
    prefix_scoring = routing.policy == "cache_aware" or (
        isinstance(routing, WeightedScorerConfig)
        and (routing.weights.prefix > 0 or routing.weights.kv > 0)
    )
    if slot_pools and prefix_scoring:
        pool = model.pools[slot_pools[0]]
        what = "routes on" if routing.policy == "cache_aware" else "scores prefixes and KV use of"
        errors.append(
            (
                ("models", model_id, "routing", "policy"),
                f"{routing.policy} {what} replicas' caches, which pool {slot_pools[0]!r} (perf "
                f"model {pool.perf.model}) does not have: use another policy (or, for "
                "weighted_scorer, weights prefix: 0 and kv: 0), or perf model roofline",
            )
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
    shown = [repr(n) for n in itertools.islice(names, 20)]
    more = len(names) - len(shown)
    return "allowed: " + ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")
