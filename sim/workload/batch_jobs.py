"""Batch jobs (PLATFORM.md, Traffic tiers): a file's worth of requests submitted at once, at the
Batch tier, expiring `expire_after_s` after submission.

A job is its rows' client: every row goes to the gateway when the job is submitted, each row's
outcome comes back as the gateway's scheduled event, and nothing is retried (Batch has no rate
limit and is never shed: a row is refused only for what no retry would fix, 400, 402 or 404).
At expiry the job asks its pool to end the rows still open; the rows already finished stay.
Row lengths are drawn from the job's own streams (`stream(seed, "batch_job", name, ...)`), so
adding a job leaves every interactive draw as it was (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sim.clock import Clock, call_later
from sim.replica.batch import BATCH
from sim.request import Request
from sim.rng import stream
from sim.status import STATUS_EXPIRED, STATUS_IN_FLIGHT, STATUS_OK
from sim.workload.chains import Runs, trace_runs
from sim.workload.config import BatchJob
from sim.workload.traces import load_trace

COMPLETED, EXPIRED, IN_PROGRESS = "completed", "expired", "in_progress"


class BatchJobSource:
    def __init__(
        self,
        job: BatchJob,
        env: Clock,
        seed: int,
        block_size: int,
        next_id: Callable[[], int],
        submit: Callable[[Request], None],
        expire: Callable[[str], None],
    ) -> None:
        """`submit`: the gateway's; `expire(job name)`: the job's pool ends its open rows."""
        self.job = job
        self.env = env
        self._next_id = next_id
        self._submit = submit
        self._expire_rows = expire
        self._outcome_of = self._outcome
        self.skipped_lines = 0
        self._runs: list[Runs | None]
        if job.file is not None:
            trace = load_trace(Path(job.file.path), job.file.as_trace())
            count = len(trace) if job.requests is None else min(job.requests, len(trace))
            self.skipped_lines = trace.skipped_lines
            self._prompts = trace.prompt_tokens[:count].tolist()
            self._outputs = trace.output_tokens[:count].tolist()
            ids, trace_block = trace.block_ids, trace.block_size
            self._runs = [
                None
                if ids is None or trace_block is None
                else trace_runs(job.name, ids[i], trace_block, self._prompts[i], block_size)
                for i in range(count)
            ]
        else:
            assert job.requests is not None
            assert job.prompt_tokens is not None and job.output_tokens is not None
            count = job.requests
            rng = stream(seed, "batch_job", job.name, "prompt_tokens")
            self._prompts = job.prompt_tokens.sample(rng, count).tolist()
            rng = stream(seed, "batch_job", job.name, "output_tokens")
            self._outputs = job.output_tokens.sample(rng, count).tolist()
            self._runs = [None] * count
        self.rows: list[Request] = []
        self.ended = 0  # rows with an outcome (served, refused or expired)
        self.finished_s = math.nan  # every row ended before expiry
        self.expired_s = math.nan  # the expiry came with rows still open

    def start(self) -> None:
        call_later(self.env, self.job.submit_at_s, self._submit_rows)

    def _submit_rows(self, _: None) -> None:
        job, now = self.job, self.env.now
        for i, (prompt, output) in enumerate(zip(self._prompts, self._outputs, strict=True)):
            request = Request(
                self._next_id(),
                job.name,
                job.account,
                job.model,
                BATCH,
                now,
                prompt,
                output,
                self._runs[i],
            )
            request.source_seq = i
            request.final = True  # a row is never retried
            request.client = self._outcome_of
            self.rows.append(request)
        self._runs = []
        call_later(self.env, job.expire_after_s, self._expire)
        for request in self.rows:
            self._submit(request)

    def _outcome(self, request: Request) -> None:
        self.ended += 1
        if self.ended == len(self.rows) and math.isnan(self.expired_s):
            self.finished_s = self.env.now

    def _expire(self, _: None) -> None:
        if self.ended < len(self.rows):
            self.expired_s = self.env.now
            self._expire_rows(self.job.name)

    def row(self) -> dict[str, Any]:
        """This job's line of jobs.parquet (at the end of the run)."""
        job, rows = self.job, self.rows
        statuses = np.array([r.status for r in rows], dtype=np.int64)
        admitted = [r.admitted_s for r in rows if not math.isnan(r.admitted_s)]
        done = int((statuses == STATUS_OK).sum())
        expired = int((statuses == STATUS_EXPIRED).sum())
        still = int((statuses == STATUS_IN_FLIGHT).sum()) + len(self._prompts) - len(rows)
        if not math.isnan(self.expired_s):
            state = EXPIRED
        elif not math.isnan(self.finished_s):
            state = COMPLETED
        else:
            state = IN_PROGRESS
        return {
            "job": job.name,
            "account": job.account,
            "model": job.model,
            "status": state,
            "submitted_s": job.submit_at_s,
            "started_s": min(admitted, default=math.nan),
            "finished_s": self.finished_s,
            "expired_s": self.expired_s,
            "rows": len(self._prompts),
            "rows_done": done,
            "rows_expired": expired,
            "rows_failed": len(self._prompts) - done - expired - still,
            "rows_open": still,
            "prompt_tokens": int(sum(r.prompt_tokens for r in rows if r.status == STATUS_OK)),
            "cached_tokens": int(sum(r.cached_tokens for r in rows if r.status == STATUS_OK)),
            "completion_tokens": int(sum(r.output_tokens for r in rows if r.status == STATUS_OK)),
            "cost_usd": float(sum(r.cost_usd for r in rows if r.status == STATUS_OK)),
        }


JOB_SCHEMA = pa.schema(
    [
        ("job", pa.string()),
        ("account", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("submitted_s", pa.float64()),
        ("started_s", pa.float64()),
        ("finished_s", pa.float64()),
        ("expired_s", pa.float64()),
        ("rows", pa.int64()),
        ("rows_done", pa.int64()),
        ("rows_expired", pa.int64()),
        ("rows_failed", pa.int64()),
        ("rows_open", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
    ]
)


def jobs_table(jobs: list[BatchJobSource]) -> pa.Table:
    """jobs.parquet: one row per batch job (definitions: docs/economics.md, Batch)."""
    rows = [job.row() for job in jobs]
    return pa.Table.from_pylist(rows, schema=JOB_SCHEMA)
