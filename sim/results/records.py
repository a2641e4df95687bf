"""One row per request attempt, kept as finished Request objects and turned into Arrow columns
in chunks (no per-request dictionaries or tuples on the hot path)."""

from __future__ import annotations

from operator import attrgetter

import numpy as np
import pyarrow as pa

from sim.request import Request
from sim.status import STATUS_OK

CHUNK_ROWS = 65536

REQUEST_COLUMNS = (
    "request_id",
    "traffic",
    "account",
    "model",
    "pool",
    "tier",
    "replica",
    "status",
    "attempt",
    "logical_id",
    "final",
    "session_id",
    "turn",
    "arrival_s",
    "admitted_s",
    "first_token_s",
    "finished_s",
    "queue_s",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "preemptions",
    "limit_prompt_tps",
    "limit_uncached_prompt_tps",
    "limit_generated_tps",
    "cost_usd",
)


class RequestRecorder:
    def __init__(self) -> None:
        self._pending: list[Request] = []
        self._batches: list[pa.RecordBatch] = []
        self.rows = 0

    def record(self, request: Request) -> None:
        self._pending.append(request)
        if len(self._pending) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._batches.append(_to_batch(self._pending))
            self.rows += len(self._pending)
            self._pending = []

    def table(self) -> pa.Table:
        self.flush()
        return pa.Table.from_batches(self._batches or [_to_batch([])])


def _to_batch(requests: list[Request]) -> pa.RecordBatch:
    def floats(name: str) -> np.ndarray:
        return np.fromiter(map(attrgetter(name), requests), float, len(requests))

    def ints(name: str) -> np.ndarray:
        return np.fromiter(map(attrgetter(name), requests), np.int64, len(requests))

    arrival = floats("arrival_s")
    admitted = floats("admitted_s")
    first = floats("first_token_s")
    finished = floats("finished_s")
    status = ints("status")
    served = status == STATUS_OK
    completion = np.where(served, ints("output_tokens"), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(completion > 1, (finished - first) / (completion - 1), np.nan)
    columns = {
        "request_id": ints("request_id"),
        "traffic": pa.array([r.traffic for r in requests], pa.string()),
        "account": pa.array([r.account for r in requests], pa.string()),
        "model": pa.array([r.model for r in requests], pa.string()),
        "pool": pa.array([r.pool for r in requests], pa.string()),
        "tier": pa.array([r.tier for r in requests], pa.string()),
        "replica": ints("replica"),
        "status": status,
        "attempt": ints("attempt"),
        "logical_id": ints("logical_id"),
        "final": np.fromiter(map(attrgetter("final"), requests), bool, len(requests)),
        "session_id": ints("session_id"),
        "turn": ints("turn"),
        "arrival_s": arrival,
        "admitted_s": admitted,
        "first_token_s": first,
        "finished_s": finished,
        "queue_s": admitted - arrival,
        "ttft_s": first - arrival,
        "tpot_s": tpot,
        "e2e_s": np.where(served, finished - arrival, np.nan),
        "prompt_tokens": ints("prompt_tokens"),
        "cached_tokens": ints("cached_tokens"),
        "completion_tokens": completion,
        "preemptions": ints("preemptions"),
        "limit_prompt_tps": floats("limit_prompt_tps"),
        "limit_uncached_prompt_tps": floats("limit_uncached_prompt_tps"),
        "limit_generated_tps": floats("limit_generated_tps"),
        "cost_usd": floats("cost_usd"),
    }
    return pa.RecordBatch.from_pydict(columns)
