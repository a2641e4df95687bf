"""A traffic source's section of the scenario (and its sessions): the schema the sources read,
kept apart from the sources so that the scenario and the workload do not import each other."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sim.config_base import StrictModel
from sim.request import Tier
from sim.units import NonNegativeSeconds, PositiveSeconds
from sim.workload.arrivals import ArrivalProcess
from sim.workload.distributions import MAX_TOKENS, ConstantLength, LengthDist
from sim.workload.durations import ExponentialTime, TimeDist
from sim.workload.retry import RetryConfig
from sim.workload.traces import TraceColumns, TraceConfig


class SessionConfig(StrictModel):
    """Multi-turn sessions. `arrivals` of the traffic source start sessions; `prompt_tokens` is
    each turn's new message (a user message, or a tool output for an agent), `output_tokens`
    each answer. An agent shape: short think times, long tool outputs, many turns."""

    turns: LengthDist = Field(description="Turns per session (whole number >= 1)")
    think_time_s: TimeDist = Field(
        default_factory=lambda: ExponentialTime(dist="exponential", mean_s=30.0),
        description="Pause between an answer and the next turn, s",
    )
    system_prompt_tokens: LengthDist = Field(
        default_factory=lambda: ConstantLength(dist="constant", value=1000),
        description="Length of each system-prompt variant, tokens (drawn once per variant)",
    )
    system_prompts: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="System-prompt variants shared by the sessions of this source",
    )
    system_prompt_choice: Literal["zipf", "uniform"] = Field(
        "zipf", description="How a session picks its variant: Zipf (popular first) or uniform"
    )
    zipf_exponent: float = Field(
        1.0, gt=0, le=100, description="Exponent s of the Zipf law (P ~ 1/rank^s)"
    )
    max_context_tokens: int = Field(
        131072,
        ge=1,
        le=MAX_TOKENS,
        description="A session ends when its next prompt would exceed this, tokens",
    )


def _standard_only() -> dict[Tier, float]:
    return {"standard": 1.0}


def _shares_sum_to_one(shares: dict[Tier, float]) -> dict[Tier, float]:
    """shares sum to 1"""  # also the rule docs/scenarios.md shows
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"shares must sum to 1, they sum to {total:g}")
    return shares


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
        None, ge=1, le=10**12, description="Arrivals stop after this many requests (null: no limit)"
    )
    migrate_to: str | None = Field(
        None,
        description="Model id this source's requests go to once its model retires (null: "
        "they get 404)",
    )
    retry: RetryConfig | None = Field(
        None, description="How its clients retry 429 and 503 (null: the scenario's `retry`)"
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


BATCH_EXPIRY_S = 24 * 3600.0  # PLATFORM.md, Traffic tiers: a batch job expires after 24 h


class BatchFile(StrictModel):
    """A batch job's file of requests read from a trace: its rows in order, their prompt and
    output lengths (and Mooncake prefix blocks); the trace's arrival times are not used, every
    row is submitted with the job."""

    path: str = Field(description="Trace file; a relative path is relative to the scenario file")
    format: Literal["mooncake", "azure", "csv"] = Field(
        description="mooncake (JSONL with hash_ids), azure (LLM inference CSV), csv (named columns)"
    )
    on_bad_line: Literal["error", "skip"] = Field(
        "error", description="A malformed line stops the run (error) or is skipped and counted"
    )
    columns: TraceColumns = Field(
        default_factory=lambda: TraceColumns(), description="Column names (csv format)"
    )

    def as_trace(self) -> TraceConfig:
        """The trace reader's settings: the whole file, in its order."""
        return TraceConfig(
            path=self.path, format=self.format, on_bad_line=self.on_bad_line, columns=self.columns
        )


class BatchJob(StrictModel):
    """A batch job (PLATFORM.md, Traffic tiers): a file's worth of requests submitted at once,
    served at the Batch tier on spare capacity, with no rate limit, at `billing.batch_multiplier`
    of list price; rows not finished `expire_after_s` after submission end as expired."""

    name: str = Field(min_length=1, description="Job id (the `traffic` column of its rows)")
    account: str = Field(description="Account submitting the job")
    model: str = Field(description="Model id its requests are sent to")
    submit_at_s: NonNegativeSeconds = Field(
        description="When the job is submitted, s (before duration_s)"
    )
    expire_after_s: PositiveSeconds = Field(
        BATCH_EXPIRY_S, description="Rows unfinished this long after submission expire, s"
    )
    requests: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Rows in the job (with `file`: at most this many of its rows, null: all)",
    )
    prompt_tokens: LengthDist | None = Field(None, description="Prompt length of a row, tokens")
    output_tokens: LengthDist | None = Field(None, description="Generated length of a row, tokens")
    file: BatchFile | None = Field(
        None, description="Rows read from a trace file instead of `requests` and distributions"
    )

    @model_validator(mode="after")
    def _rows_given(self) -> BatchJob:
        drawn = ("prompt_tokens", "output_tokens")
        if self.file is not None:
            clash = [name for name in drawn if getattr(self, name) is not None]
            if clash:
                raise ValueError(f"a file replaces {', '.join(clash)}: give one or the other")
        else:
            missing = [name for name in ("requests", *drawn) if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a batch job needs {', '.join(missing)} (or a file)")
        return self
