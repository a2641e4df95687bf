"""A pool's section of the scenario: what a replica pool needs, and nothing above it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.perf.config import ExponentialPerf, FixedPerf, PerfConfig, RooflinePerf
from sim.replica.autoscaling import AutoscalingConfig
from sim.replica.fleet_config import FailuresConfig, RollingUpdateConfig
from sim.replica.schedulers import SCHEDULERS, SchedulerConfig
from sim.replica.schedulers.strict_priority import StrictPriorityConfig
from sim.request import ALL_TIERS, Tier
from sim.units import NonNegativeSeconds, PositiveSeconds
from sim.workload.distributions import MAX_TOKENS


class Pool(StrictModel):
    """Identical replicas of one model on one GPU type."""

    gpu: str = Field("h100", description="GPU type from the catalog (`capsim perf` lists them)")
    gpus_per_replica: int = Field(
        1, ge=1, le=1024, description="GPUs per replica (tensor parallel degree)"
    )
    replicas: int = Field(
        1,
        ge=1,
        le=100_000,
        description="Number of replicas in the pool (with autoscaling: at the start)",
    )
    max_num_seqs: int = Field(
        256, ge=1, le=1_000_000, description="Most requests running at once on a replica"
    )
    max_batched_tokens: int = Field(
        8192,
        ge=1,
        le=MAX_TOKENS,
        description="Token budget of one iteration, tokens (chunked prefill)",
    )
    block_size: int = Field(16, ge=1, le=1_000_000, description="KV-cache block, tokens")
    memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of GPU memory usable for weights and KV cache"
    )
    prefix_caching: bool = Field(
        True, description="Reuse cached prompt prefixes (on for every model of the platform)"
    )
    kv_capacity_tokens: int | None = Field(
        None,
        ge=1,
        le=10**12,
        description="Override the KV capacity derived from memory, tokens per replica",
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
    failures: FailuresConfig | None = Field(
        None, description="Replica failures and restarts (null: replicas never fail)"
    )
    rolling_update: RollingUpdateConfig | None = Field(
        None, description="A rolling update of the pool's replicas (null: none)"
    )
    autoscaling: AutoscalingConfig | None = Field(
        None,
        description="Scale between min and max replicas toward a target: utilisation, "
        "queueing_delay, kv_use (null: a fixed count)",
    )
    shed_standard_after_s: NonNegativeSeconds | None = Field(
        None,
        description="Shed Standard (and Fast) attempts with 503 once the oldest waiting "
        "Standard or Priority attempt has waited this long, s (null: never on delay)",
    )
    shed_priority_after_s: NonNegativeSeconds | None = Field(
        None,
        description="Shed Priority attempts with 503 once the oldest waiting Priority attempt "
        "has waited this long, s (null: never)",
    )
    shed_standard_on_kv_full: bool = Field(
        False,
        description="Also shed Standard while work waits and no serving replica has free KV "
        "blocks for the attempt's prompt",
    )
    batch_max_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A replica admits a Batch row only while no interactive request waits and "
        "Batch holds less than this share of its max_num_seqs and of its KV blocks (each row "
        "counted at its full prompt + output length) (docs/economics.md, Batch)",
    )
    batch_max_slowdown: float = Field(
        0.02,
        ge=0,
        le=100,
        description="While interactive requests are in an iteration, Batch work may lengthen it "
        "by at most this fraction of its time without Batch (the performance model's price); "
        "running Batch decodes beyond it are preempted, Batch prefill chunks cut to fit",
    )
    batch_max_iteration_s: PositiveSeconds = Field(
        0.05,
        le=3600,
        description="With no interactive request in an iteration, Batch prefill chunks are cut "
        "to keep it within this long (or its decodes' step), s: an interactive request that "
        "arrives waits for the iteration in flight",
    )
    scheduler: SchedulerConfig = Field(
        default_factory=lambda: StrictPriorityConfig(policy="strict_priority"),
        description="Admission order and preemption on a replica: "
        + ", ".join(SCHEDULERS)
        + " (docs/scheduling.md)",
    )

    @model_validator(mode="after")
    def _fleet_consistent(self) -> Pool:
        standard, priority = self.shed_standard_after_s, self.shed_priority_after_s
        if standard is not None and priority is not None and priority < standard:
            raise ValueError(
                f"shed_priority_after_s ({priority:g}) must be at least shed_standard_after_s "
                f"({standard:g}): Priority is shed last"
            )
        scaling = self.autoscaling
        if scaling is not None:
            if not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
                raise ValueError(
                    f"replicas ({self.replicas}) must lie within autoscaling min_replicas "
                    f"({scaling.min_replicas}) and max_replicas ({scaling.max_replicas})"
                )
            if scaling.policy == "kv_use" and self.slot_model:
                raise ValueError(
                    "autoscaling policy kv_use needs a KV cache: the fixed and exponential "
                    "perf models have none (use utilisation or queueing_delay)"
                )
        slots = max(self.replicas, scaling.max_replicas) if scaling else self.replicas
        for failure in self.failures.scheduled if self.failures else []:
            if failure.replica >= slots:
                raise ValueError(
                    f"failures.scheduled: replica {failure.replica} does not exist "
                    f"(the pool has replicas 0 to {slots - 1})"
                )
        if self.slot_model and SCHEDULERS[self.scheduler.policy].preempts_to_admit:
            raise ValueError(
                f"scheduler {self.scheduler.policy} preempts running requests, which a slot "
                f"model ({self.perf.model}) cannot: use a roofline perf model or another policy"
            )
        return self

    @property
    def slot_model(self) -> bool:
        """True when requests hold slots for a drawn time instead of being batched on a GPU."""
        return isinstance(self.perf, FixedPerf | ExponentialPerf)
