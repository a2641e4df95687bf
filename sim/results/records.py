"""One row per request attempt, streamed to requests.parquet as the run goes: finished Request
objects wait in a buffer of CHUNK_ROWS, which becomes one Arrow batch (no per-request
dictionaries or tuples on the hot path) written as one row group, and is then let go, so memory
does not grow with the run. What is needed after the run is read back column by column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.request import Request
from sim.status import STATUS_OK

CHUNK_ROWS = 65536  # records per row group: about 16 MB of Arrow data in flight at most

LABEL = pa.dictionary(pa.int32(), pa.string())  # names from a small set: stored once per chunk
REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.int64()),
        ("traffic", LABEL),
        ("account", LABEL),
        ("model", LABEL),
        ("pool", LABEL),
        ("tier", LABEL),
        ("replica", pa.int64()),
        ("status", pa.int64()),
        ("attempt", pa.int64()),
        ("logical_id", pa.int64()),
        ("final", pa.bool_()),
        ("session_id", pa.int64()),
        ("turn", pa.int64()),
        ("arrival_s", pa.float64()),
        ("admitted_s", pa.float64()),
        ("first_token_s", pa.float64()),
        ("finished_s", pa.float64()),
        ("queue_s", pa.float64()),
        ("ttft_s", pa.float64()),
        ("tpot_s", pa.float64()),
        ("e2e_s", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("preemptions", pa.int64()),
        ("limit_prompt_tps", pa.float64()),
        ("limit_uncached_prompt_tps", pa.float64()),
        ("limit_generated_tps", pa.float64()),
        ("cost_usd", pa.float64()),
    ]
)
REQUEST_COLUMNS = tuple(REQUEST_SCHEMA.names)
LABEL_COLUMNS = tuple(f.name for f in REQUEST_SCHEMA if f.type == LABEL)


class RequestRecorder:
    """Writes records to `sink` (requests.parquet in the run's temporary folder, or a buffer in
    memory when the caller wants the table back) every CHUNK_ROWS records."""

    def __init__(self, sink: Path | pa.BufferOutputStream) -> None:
        self._sink = sink
        self._writer = pq.ParquetWriter(sink, REQUEST_SCHEMA)
        self._pending: list[tuple] = []
        self.rows = 0

    def record(self, request: Request) -> None:
        # The attempt's fields are read now, in one call, while the object is fresh in the CPU's
        # cache; the object itself is let go (reading 25 fields of 65,536 cold objects at the
        # flush, one column at a time, cost 3% of a run).
        self._pending.append(_fields(request))
        if len(self._pending) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_batch(_to_batch(self._pending))
            self.rows += len(self._pending)
            self._pending = []

    def close(self) -> Records:
        """Write what is left and the file's footer; the records, to be read back."""
        self.flush()
        self._writer.close()
        sink = self._sink
        source = sink if isinstance(sink, Path) else sink.getvalue()
        return Records(source, self.rows)


@dataclass(frozen=True)
class Records:
    """A run's records on disk (or in a buffer), read back only in the columns a caller needs."""

    source: Path | pa.Buffer
    rows: int

    def read(self, columns: Sequence[str] = REQUEST_COLUMNS) -> pa.Table:
        """The columns as one chunk each (numeric ones convert to NumPy without a copy; label
        columns keep one dictionary), read one at a time so that at most one column is held
        twice."""
        source = pa.BufferReader(self.source) if isinstance(self.source, pa.Buffer) else self.source
        file = pq.ParquetFile(source)
        return pa.table(
            {name: file.read(columns=[name])[name].combine_chunks() for name in columns},
            schema=pa.schema([REQUEST_SCHEMA.field(name) for name in columns]),
        )


# The Request fields a record is made of, read in one call per attempt.
_FIELDS = (
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
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "preemptions",
    "limit_prompt_tps",
    "limit_uncached_prompt_tps",
    "limit_generated_tps",
    "cost_usd",
)
_fields = attrgetter(*_FIELDS)


def _to_batch(rows: list[tuple]) -> pa.RecordBatch:
    """The records of `rows` (each the `_FIELDS` of one attempt) as one Arrow batch."""
    field = dict(zip(_FIELDS, zip(*rows, strict=True), strict=True))  # column by column

    def floats(name: str) -> np.ndarray:
        return np.array(field[name], float)

    def ints(name: str) -> np.ndarray:
        return np.array(field[name], np.int64)

    def labels(name: str) -> pa.DictionaryArray:
        return pa.array(field[name], pa.string()).dictionary_encode()

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
        "traffic": labels("traffic"),
        "account": labels("account"),
        "model": labels("model"),
        "pool": labels("pool"),
        "tier": labels("tier"),
        "replica": ints("replica"),
        "status": status,
        "attempt": ints("attempt"),
        "logical_id": ints("logical_id"),
        "final": np.array(field["final"], bool),
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
    return pa.RecordBatch.from_pydict(columns, schema=REQUEST_SCHEMA)
