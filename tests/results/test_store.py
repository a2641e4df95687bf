"""Writing a run folder: an earlier run is replaced whole, anything else is left alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sim.errors import InputError
from sim.results.store import write_run
from sim.scenario_loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
TABLE = pa.table({"x": [1, 2]})


def _write(out: Path) -> Path:
    return write_run(out, SCENARIO, TABLE, TABLE, TABLE, {"runs": 1})


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_an_earlier_run_is_replaced_whole(tmp_path: Path) -> None:
    out = _write(tmp_path / "run")
    (out / "plots").mkdir()
    (out / "plots" / "old.png").write_text("from the earlier run")
    _write(out)
    assert _files(out) == {
        "requests.parquet",
        "timeseries.parquet",
        "cache_hits.parquet",
        "summary.json",
        "scenario.resolved.yaml",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no folder set aside is left


def test_a_new_or_empty_folder_is_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert (_write(out) / "summary.json").is_file()


@pytest.mark.parametrize("marker", ["summary.json", "scenario.resolved.yaml"])
def test_a_folder_with_either_run_file_counts_as_a_run(tmp_path: Path, marker: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / marker).write_text("{}")
    (out / "notes.txt").write_text("part of the earlier run's folder")
    _write(out)
    assert not (out / "notes.txt").exists()


def test_a_folder_that_is_not_a_run_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "chapters" / "one.tex").write_text("precious")
    (out / "README").write_text("precious too")
    with pytest.raises(InputError) as refused:
        _write(out)
    message = str(refused.value)
    assert message.startswith(f"{out}: holds files but is not a capsim run folder")
    assert "summary.json" in message
    assert _files(out) == {"chapters", "chapters/one.tex", "README"}
    assert [p.name for p in tmp_path.iterdir()] == ["thesis"]  # no temporary folder either


def test_a_file_in_the_way_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.write_text("precious")
    with pytest.raises(InputError, match="is a file"):
        _write(out)
    assert out.read_text() == "precious"
