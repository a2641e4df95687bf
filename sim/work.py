"""What a run will cost, estimated from the scenario before it starts, and the refusal of runs
whose cost is absurd (a typo such as `duration_s: 1e12` or `sample_interval_s: 1e-9` would
otherwise hang for hours or be killed for memory after a long wait)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.scenario import Scenario, Traffic

# The most a run may have. A request costs about 5 events and 100 bytes of summary columns, so
# the requests limit is some 10 GB and hours of wall time: far beyond a planning run.
MAX_REQUESTS = 100_000_000
MAX_SESSIONS = 50_000_000
MAX_SAMPLE_ROWS = 50_000_000  # time-series rows: samples x replicas
MAX_REPLICAS = 100_000
MAX_PROMPT_VARIANTS = 10_000_000


@dataclass(frozen=True)
class Work:
    requests_by_source: list[float]  # expected arrivals of each traffic source (traces: 0)
    sessions: float
    sample_rows: float
    replicas: int  # most at once (autoscaling's max_replicas)
    prompt_variants: int

    @property
    def requests(self) -> float:
        return sum(self.requests_by_source)


def _requests(traffic: Traffic, duration_s: float) -> tuple[float, float]:
    """Expected (requests, sessions) of one source; a trace is counted when it is read."""
    if traffic.arrivals is None:
        return (0.0, 0.0) if traffic.max_requests is None else (float(traffic.max_requests), 0.0)
    starts = traffic.arrivals.mean_count(duration_s)
    sessions = starts if traffic.sessions is not None else 0.0
    requests = starts * traffic.sessions.turns.mean if traffic.sessions is not None else starts
    if traffic.max_requests is not None:
        requests = min(requests, traffic.max_requests)
    return requests, sessions


def estimate(scenario: Scenario) -> Work:
    per_source = [_requests(t, scenario.duration_s) for t in scenario.traffic]
    replicas = sum(
        max(p.replicas, p.autoscaling.max_replicas if p.autoscaling else 0)
        for m in scenario.models.values()
        for p in m.pools.values()
    )
    return Work(
        requests_by_source=[r for r, _ in per_source],
        sessions=sum(s for _, s in per_source),
        sample_rows=(scenario.duration_s / scenario.sample_period_s + 1) * replicas,
        replicas=replicas,
        prompt_variants=sum(t.sessions.system_prompts for t in scenario.traffic if t.sessions),
    )


def absurd_work_errors(scenario: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """(path, message) for each part of the estimated work beyond its limit."""
    work = estimate(scenario)
    errors: list[tuple[tuple[Any, ...], str]] = []
    if not work.requests <= MAX_REQUESTS:  # also catches an infinite product
        biggest = max(range(len(work.requests_by_source)), key=work.requests_by_source.__getitem__)
        errors.append(
            (
                ("traffic", biggest),
                f"the run would send about {work.requests:.3g} requests "
                f"(this source {work.requests_by_source[biggest]:.3g}), more than the "
                f"{MAX_REQUESTS:,} a run may have: shorten duration_s "
                f"({scenario.duration_s:g} s), lower the rate or set max_requests",
            )
        )
    batch_rows = sum(job.requests or 0 for job in scenario.batch_jobs)
    if batch_rows > MAX_REQUESTS:
        errors.append(
            (
                ("batch_jobs",),
                f"the batch jobs have {batch_rows:,} rows in all, more than the "
                f"{MAX_REQUESTS:,} a run may have",
            )
        )
    if not work.sessions <= MAX_SESSIONS:
        errors.append(
            (
                ("traffic",),
                f"the run would start about {work.sessions:.3g} sessions, more than the "
                f"{MAX_SESSIONS:,} a run may have",
            )
        )
    if not work.sample_rows <= MAX_SAMPLE_ROWS:
        errors.append(
            (
                ("sample_interval_s",),
                f"the time series would have about {work.sample_rows:.3g} rows "
                f"({scenario.duration_s:g} s / {scenario.sample_period_s:g} s x "
                f"{work.replicas:,} replicas), more than {MAX_SAMPLE_ROWS:,}: sample less often",
            )
        )
    if work.replicas > MAX_REPLICAS:
        errors.append(
            (
                ("models",),
                f"the pools have {work.replicas:,} replicas in all, more than {MAX_REPLICAS:,}",
            )
        )
    if work.prompt_variants > MAX_PROMPT_VARIANTS:
        errors.append(
            (
                ("traffic",),
                f"the sessions have {work.prompt_variants:,} system-prompt variants in all, "
                f"more than {MAX_PROMPT_VARIANTS:,}",
            )
        )
    return errors
