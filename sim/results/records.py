"""One row per request attempt, streamed to requests.parquet as the run goes: the fields of
finished attempts wait in a buffer of CHUNK_ROWS records, which becomes one Arrow batch (no
per-request dictionaries or tuples on the hot path) written as one row group, and is then let
go, so memory does not grow with the run. What is needed after the run is read back column by
column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
        # Dictionary pages for the label columns only: trying them on every numeric column,
        # where they rarely pay, took half the time of writing a chunk.
        self._writer = pq.ParquetWriter(sink, REQUEST_SCHEMA, use_dictionary=list(LABEL_COLUMNS))
        # The pending records, row after row, by type: `_FLOATS`, `_INTS` and `_LABELS` of each.
        self._floats: list[float] = []
        self._ints: list[int] = []
        self._labels: list[str] = []
        self._pending = 0
        self.rows = 0

    def record(self, request: Request) -> None:
        # The attempt's fields are read now, while the object is fresh in the CPU's cache, into
        # three flat lists (one NumPy conversion each at the flush, where a tuple per record
        # cost a transposition and a conversion per column: 9% of the compiled loop); the
        # object itself is let go. The order is that of `_FLOATS`, `_INTS` and `_LABELS`.
        self._floats.extend(
            (
                request.arrival_s,
                request.admitted_s,
                request.first_token_s,
                request.finished_s,
                request.limit_prompt_tps,
                request.limit_uncached_prompt_tps,
                request.limit_generated_tps,
                request.cost_usd,
            )
        )
        self._ints.extend(
            (
                request.request_id,
                request.replica,
                request.status,
                request.attempt,
                request.logical_id,
                request.final,
                request.session_id,
                request.turn,
                request.prompt_tokens,
                request.cached_tokens,
                request.output_tokens,
                request.preemptions,
            )
        )
        self._labels.extend(
            (request.traffic, request.account, request.model, request.pool, request.tier)
        )
        self._pending += 1
        if self._pending >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_batch(_to_batch(self._floats, self._ints, self._labels))
            self.rows += self._pending
            self._floats, self._ints, self._labels = [], [], []
            self._pending = 0

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


# The Request fields a record is made of, by type, in the order `RequestRecorder.record` reads
# them (`final` is read as an int).
_FLOATS = (
    "arrival_s",
    "admitted_s",
    "first_token_s",
    "finished_s",
    "limit_prompt_tps",
    "limit_uncached_prompt_tps",
    "limit_generated_tps",
    "cost_usd",
)
_INTS = (
    "request_id",
    "replica",
    "status",
    "attempt",
    "logical_id",
    "final",
    "session_id",
    "turn",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "preemptions",
)
_LABELS = ("traffic", "account", "model", "pool", "tier")


def _to_batch(floats: list[float], ints: list[int], labels: list[str]) -> pa.RecordBatch:
    """The records of the flat lists (`_FLOATS`, `_INTS` and `_LABELS` of each attempt, row
    after row) as one Arrow batch."""
    by_row = np.array(floats, float).reshape(-1, len(_FLOATS))
    field = dict(zip(_FLOATS, by_row.T.copy(), strict=True))  # each column contiguous
    by_row = np.array(ints, np.int64).reshape(-1, len(_INTS))
    field |= dict(zip(_INTS, by_row.T.copy(), strict=True))

    def label(k: int) -> pa.DictionaryArray:
        return pa.array(labels[k :: len(_LABELS)], pa.string()).dictionary_encode()

    arrival = field["arrival_s"]
    admitted = field["admitted_s"]
    first = field["first_token_s"]
    finished = field["finished_s"]
    status = field["status"]
    served = status == STATUS_OK
    completion = np.where(served, field["output_tokens"], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(completion > 1, (finished - first) / (completion - 1), np.nan)
    columns = {
        "request_id": field["request_id"],
        "traffic": label(0),
        "account": label(1),
        "model": label(2),
        "pool": label(3),
        "tier": label(4),
        "replica": field["replica"],
        "status": status,
        "attempt": field["attempt"],
        "logical_id": field["logical_id"],
        "final": field["final"] != 0,
        "session_id": field["session_id"],
        "turn": field["turn"],
        "arrival_s": arrival,
        "admitted_s": admitted,
        "first_token_s": first,
        "finished_s": finished,
        "queue_s": admitted - arrival,
        "ttft_s": first - arrival,
        "tpot_s": tpot,
        "e2e_s": np.where(served, finished - arrival, np.nan),
        "prompt_tokens": field["prompt_tokens"],
        "cached_tokens": field["cached_tokens"],
        "completion_tokens": completion,
        "preemptions": field["preemptions"],
        "limit_prompt_tps": field["limit_prompt_tps"],
        "limit_uncached_prompt_tps": field["limit_uncached_prompt_tps"],
        "limit_generated_tps": field["limit_generated_tps"],
        "cost_usd": field["cost_usd"],
    }
    return pa.RecordBatch.from_pydict(columns, schema=REQUEST_SCHEMA)
