"""Builds the world from a Scenario and runs it: the only place that wires stages together."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import simpy

from sim.clock import Clock, call_first_at
from sim.gateway.billing import price_book
from sim.gateway.budget import BudgetCheck
from sim.gateway.gateway import FrontDoorCheck, Gateway
from sim.gateway.ratelimit import RateLimitCheck
from sim.gateway.shedding import SheddingCheck
from sim.gcpause import collector_paused
from sim.perf.base import BatchTimeModel
from sim.perf.config import RooflinePerf
from sim.replica.config import Pool
from sim.replica.pool import ReplicaPool
from sim.results.limits import LimitsSampler
from sim.results.records import Records, RequestRecorder
from sim.results.timeseries import TimeSeriesSampler
from sim.scenario import Scenario
from sim.workload.batch_jobs import BatchJobSource, jobs_table
from sim.workload.config import BatchJob, Traffic
from sim.workload.open_loop import OpenLoopSource
from sim.workload.sessions import SessionSource
from sim.workload.source import SourceContext
from sim.workload.trace_replay import TraceSource

ProgressCallback = Callable[[float, float], None]  # (simulated seconds so far, total)


@dataclass
class RunOutput:
    records: Records  # requests.parquet, written as the run went
    timeseries: pa.Table
    limits: pa.Table  # limits.parquet: per (account, model id) and sampling time
    end_s: float
    events: int
    pools: list[ReplicaPool]
    trace_lines_skipped: dict[str, int]  # per replayed traffic source (on_bad_line: skip)
    warnings: list[str]  # said at run time and kept in summary.json
    sessions: dict[str, dict[str, int]]  # per session source: started, completed, abandoned
    arrivals_end_s: float  # duration_s, or earlier when every source stopped early
    jobs: pa.Table  # jobs.parquet: per batch job

    @property
    def requests(self) -> pa.Table:
        """Every record, every column, in memory: for small runs (tests, notebooks); a run's
        own analysis reads only the columns it needs (`records.read`)."""
        return self.records.read()


def _perf_and_capacity(model_arch: str, pool: Pool) -> tuple[BatchTimeModel | None, int]:
    """The pool's iteration-time model and KV capacity in blocks per replica."""
    if pool.slot_model:
        return None, 0
    from sim.perf.roofline import build_batch_time_model

    assert isinstance(pool.perf, RooflinePerf)
    model = build_batch_time_model(model_arch, pool.gpu, pool.gpus_per_replica, pool.perf)
    tokens = pool.kv_capacity_tokens
    if tokens is None:
        tokens = model.kv_capacity_tokens(pool.memory_utilization)
    return model, tokens // pool.block_size


class Simulation:
    def __init__(self, scenario: Scenario, records_path: Path | None = None) -> None:
        """Records stream to `records_path` as the run goes (into a buffer in memory without
        one)."""
        self.scenario = scenario
        self.env = Clock()
        self.recorder = RequestRecorder(records_path or pa.BufferOutputStream())
        self._ids = itertools.count()
        self.gateway = Gateway(self.env, self.recorder.record)
        self._users = {account.name: account.users for account in scenario.accounts}
        self.pools: list[ReplicaPool] = []
        for model_id, model in scenario.models.items():
            for pool_name, pool in model.pools.items():
                perf, blocks = _perf_and_capacity(model.architecture, pool)
                replica_pool = ReplicaPool(
                    self.env,
                    model_id,
                    pool_name,
                    pool,
                    model.routing,
                    scenario.seed,
                    scenario.step_by_step,
                    self.gateway.finished,
                    perf,
                    blocks,
                )
                self.pools.append(replica_pool)
                for tier in model.pool_tiers(pool):
                    self.gateway.route(model_id, tier, replica_pool)
        # Front-door checks in their order: budget (402), request cap and token limits (429),
        # shedding (503).
        self.budget = BudgetCheck(scenario, price_book(scenario))
        self.rate_limits = None
        checks: list[FrontDoorCheck] = [self.budget]
        if scenario.rate_limits is not None:
            self.rate_limits = RateLimitCheck(scenario, scenario.rate_limits)
            checks.append(self.rate_limits)
        shedding = SheddingCheck(self.gateway.pools_by_route())
        if shedding.active:  # no pool sheds: nothing to ask on every attempt
            checks.append(shedding)
        self.gateway.checks = tuple(checks)
        self.sources = [self._source(traffic) for traffic in scenario.traffic]
        self.jobs = [self._job(job) for job in scenario.batch_jobs]
        self.end_s = scenario.duration_s + scenario.drain_s
        self.sampler = TimeSeriesSampler(
            self.env, self.pools, scenario.sample_period_s, scenario.duration_s
        )
        self.limits_sampler = LimitsSampler(
            self.env,
            self.rate_limits.buckets if self.rate_limits else {},
            scenario.sample_period_s,
            scenario.duration_s,
        )

    def _source(self, traffic: Traffic) -> OpenLoopSource | SessionSource | TraceSource:
        scenario = self.scenario
        model = scenario.models[traffic.model]
        context = SourceContext(
            env=self.env,
            seed=scenario.seed,
            duration_s=scenario.duration_s,
            block_size=next(iter(model.pools.values())).block_size,
            users=self._users[traffic.account],
            tier_override="fast" if model.is_fast else None,
            next_id=self._next_id,
            submit=self.gateway.submit,
            retry=traffic.retry or scenario.retry,
        )
        if traffic.trace is not None:
            return TraceSource(traffic, context)
        if traffic.sessions is not None:
            return SessionSource(traffic, context)
        return OpenLoopSource(traffic, context)

    def _job(self, job: BatchJob) -> BatchJobSource:
        model = self.scenario.models[job.model]
        pool = self.gateway.pools_by_route()[job.model, "batch"]
        return BatchJobSource(
            job,
            self.env,
            self.scenario.seed,
            next(iter(model.pools.values())).block_size,
            self._next_id,
            self.gateway.submit,
            pool.expire_batch,
        )

    def _next_id(self) -> int:
        return next(self._ids)

    def run(self, progress: ProgressCallback | None = None) -> RunOutput:
        for pool in self.pools:
            pool.start()
        self._schedule_retirements()
        for source in self.sources:
            source.start()
        for job in self.jobs:
            job.start()
        self.sampler.start()
        self.limits_sampler.start()
        if progress is not None:
            self._report_progress(progress)
        with collector_paused():  # millions of live objects, no cycles on the hot path
            self.env.run(until=self.end_s)
        if progress is not None:
            progress(self.scenario.duration_s, self.scenario.duration_s)
        self._record_unfinished()
        events = self.env.scheduled
        skipped = {
            source.traffic.name: source.trace.skipped_lines
            for source in self.sources
            if isinstance(source, TraceSource)
        } | {job.job.name: job.skipped_lines for job in self.jobs if job.job.file is not None}
        warnings = [
            f"model {pool.model_id} pool {pool.name}: {warning}"
            for pool in self.pools
            for warning in pool.router.warnings()
        ]
        sessions = {
            source.traffic.name: {
                "started": source.sessions,
                "completed": source.completed,
                "abandoned": source.abandoned,
            }
            for source in self.sources
            if isinstance(source, SessionSource)
        }
        return RunOutput(
            self.recorder.close(),
            self.sampler.table(),
            self.limits_sampler.table(),
            self.env.now,
            events,
            self.pools,
            skipped,
            warnings,
            sessions,
            self._arrivals_end_s(),
            jobs_table(self.jobs),
        )

    def _arrivals_end_s(self) -> float:
        """When arrivals ended: the last source's stop when every source stopped before
        duration_s (max_requests, a trace replayed to its end), else duration_s."""
        stops = [source.stopped_s for source in self.sources]
        ended = [stop for stop in stops if stop is not None]
        return max(ended) if len(ended) == len(stops) else self.scenario.duration_s

    def _schedule_retirements(self) -> None:
        """A retired model id answers 404 from its retirement time on (before any arrival
        then); sources that declare `migrate_to` move."""
        for model_id, model in self.scenario.models.items():
            if model.retire_at_s is not None:
                moves = {
                    t.name: t.migrate_to
                    for t in self.scenario.traffic
                    if t.model == model_id and t.migrate_to is not None
                }
                call_first_at(
                    self.env, model.retire_at_s, functools.partial(self._retire, model_id, moves)
                )

    def _retire(self, model_id: str, moves: dict[str, str], _: None) -> None:
        self.gateway.retire(model_id, moves)

    def _report_progress(self, progress: ProgressCallback) -> None:
        total = self.scenario.duration_s
        period = total / 200

        def tick(event: simpy.Event) -> None:
            progress(self.env.now, total)
            if self.env.now + period < total:
                self.env.timeout(period).callbacks.append(tick)

        self.env.timeout(period).callbacks.append(tick)

    def _record_unfinished(self) -> None:
        """Attempts still queued or running when the drain ended: status 0 (no answer)."""
        for pool in self.pools:
            for request in pool.batch:
                self.recorder.record(request)
            for replica in pool.replicas:
                for request in [*replica.running, *replica.waiting_requests()]:
                    self.recorder.record(request)


def simulate(
    scenario: Scenario,
    progress: ProgressCallback | None = None,
    records_path: Path | None = None,
) -> RunOutput:
    return Simulation(scenario, records_path).run(progress)
