"""A traffic source's section of the scenario (and its sessions): the schema the sources read,
kept apart from the sources so that the scenario and the workload do not import each other."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sim.config_base import StrictModel
from sim.request import Tier
from sim.workload.arrivals import ArrivalProcess
from sim.workload.distributions import MAX_TOKENS, ConstantLength, LengthDist
from sim.workload.durations import ExponentialTime, TimeDist
from sim.workload.retry import RetryConfig
from sim.workload.traces import TraceConfig


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
