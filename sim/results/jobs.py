"""The summary's jobs section: each batch job's line of jobs.parquet, as plain data, and the
totals over jobs (definitions: docs/economics.md, Batch)."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

TOTALLED = ("rows", "rows_done", "rows_expired", "rows_failed", "rows_open", "cost_usd")


def jobs_summary(jobs: pa.Table) -> dict[str, Any]:
    """{"jobs": [one dict per job, NaN times as None], "total": sums of the row counts and
    cost}; times are simulated seconds, durations from submission."""
    rows = []
    for job in jobs.to_pylist():
        for key in ("started_s", "finished_s", "expired_s"):
            if job[key] is not None and math.isnan(job[key]):
                job[key] = None
        end = job["finished_s"] if job["finished_s"] is not None else job["expired_s"]
        job["turnaround_s"] = None if end is None else end - job["submitted_s"]
        rows.append(job)
    total = {key: sum(job[key] for job in rows) for key in TOTALLED}
    return {"jobs": rows, "total": total}
