"""Records stream to Parquet as the run goes: memory holds at most one chunk of them."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import slot_scenario, tables_equal

from sim.engine import Simulation, simulate
from sim.request import Request
from sim.results import records
from sim.results.records import LABEL_COLUMNS, REQUEST_SCHEMA, RequestRecorder


class _Tracked(Request):
    __slots__ = ("__weakref__",)  # Request has none: only this test follows its objects


def _request(i: int) -> _Tracked:
    request = _Tracked(i, "t", "a", "m", "standard", float(i), 100, 10)
    request.status = 200
    return request


def test_the_recorder_writes_each_chunk_and_holds_no_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "CHUNK_ROWS", 4)
    path = tmp_path / "requests.parquet"
    recorder = RequestRecorder(path)
    alive = []
    for i in range(10):
        request = _request(i)
        alive.append(weakref.ref(request))
        recorder.record(request)
    del request
    # Two chunks written; the last two records wait for the next chunk, but no request is held.
    assert all(ref() is None for ref in alive)
    assert recorder.rows == 8
    written = recorder.close()
    file = pq.ParquetFile(path)
    assert file.metadata.num_row_groups == 3
    assert file.schema_arrow.equals(REQUEST_SCHEMA)
    table = written.read()
    assert written.rows == table.num_rows == 10
    assert table["request_id"].to_pylist() == list(range(10))
    assert table["arrival_s"].to_pylist() == [float(i) for i in range(10)]


def test_memory_does_not_grow_with_the_records_during_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory sampled through a run (Python and NumPy objects, as tracemalloc sees them, and
    Arrow's pool) grows after the first quarter by far less than the records take: each chunk
    is written and dropped. Kept in memory, as before streaming, the growth is about 3/4 of
    them."""
    monkeypatch.setattr(records, "CHUNK_ROWS", 500)
    held: list[int] = []

    def sample(now: float, total: float) -> None:
        held.append(tracemalloc.get_traced_memory()[0] + pa.total_allocated_bytes())

    tracemalloc.start()
    try:
        result = simulate(slot_scenario(8, 200.0, 0.01, 100.0, seed=3), sample, tmp_path / "r")
    finally:
        tracemalloc.stop()
    table = result.records.read()
    assert table.num_rows > 19_000  # 38 chunks and more
    quarter = len(held) // 4
    assert quarter >= 50
    assert max(held) - max(held[:quarter]) < table.nbytes / 4


def test_records_read_back_in_one_chunk_with_label_columns_dictionary_encoded(
    tmp_path: Path,
) -> None:
    scenario = slot_scenario(2, 5.0, 0.1, 50.0, seed=1)
    in_memory = simulate(scenario).requests
    on_disk = simulate(scenario, records_path=tmp_path / "r.parquet").records
    assert tables_equal(on_disk.read(), in_memory)
    assert tables_equal(pq.read_table(tmp_path / "r.parquet").combine_chunks(), in_memory)
    assert all(pa.types.is_dictionary(in_memory[name].type) for name in LABEL_COLUMNS)
    assert all(column.num_chunks == 1 for column in in_memory.columns)
    picked = on_disk.read(["tier", "ttft_s"])
    assert picked.column_names == ["tier", "ttft_s"]
    assert tables_equal(picked, in_memory.select(["tier", "ttft_s"]))


def test_the_garbage_collector_is_restored_and_a_finished_simulation_freed() -> None:
    """The engine turns the cyclic collector off for its event loop only: after a run, or a run
    interrupted, it is on again, and nothing keeps the finished simulation alive (in-process
    sweeps run many)."""
    scenario = slot_scenario(2, 5.0, 0.1, 50.0, seed=1)
    assert gc.isenabled()
    simulation = Simulation(scenario)
    simulation.run()
    assert gc.isenabled()
    finished = weakref.ref(simulation)
    del simulation
    gc.collect()
    assert finished() is None

    def interrupt(now: float, total: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(scenario, interrupt)
    assert gc.isenabled()
