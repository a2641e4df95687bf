"""Scenario sections of a pool's fleet events: failures and rolling updates (autoscaling has
its policies in `sim.replica.autoscaling`). A leaf module: the pool and the scenario import it."""

from __future__ import annotations

from pydantic import Field

from sim.config_base import StrictModel
from sim.units import PositiveSeconds, Seconds


class ScheduledFailure(StrictModel):
    at_s: Seconds = Field(ge=0, description="When the replica fails, s")
    replica: int = Field(0, ge=0, description="Index of the replica that fails")


class FailuresConfig(StrictModel):
    """Replicas fail (all in-flight attempts answered 503, cache lost) and restart."""

    mtbf_s: PositiveSeconds | None = Field(
        None,
        description="Mean serving time between failures of one replica (exponential), s "
        "(null: only the scheduled failures)",
    )
    scheduled: list[ScheduledFailure] = Field(
        default_factory=list, description="Failures at given times (skipped if not serving then)"
    )
    restart_s: Seconds = Field(
        180.0, ge=0, description="From a failure until the replica serves again, s"
    )


class RollingUpdateConfig(StrictModel):
    """At `at_s` the replicas held then are drained and restarted, a few at a time."""

    at_s: Seconds = Field(ge=0, description="When the update starts, s")
    max_unavailable: int = Field(
        1, ge=1, description="Replicas draining or restarting at once during the update"
    )
    restart_s: Seconds = Field(
        180.0, ge=0, description="From a drained replica's restart until it serves again, s"
    )
