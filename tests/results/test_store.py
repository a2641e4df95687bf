"""Writing a run folder: an earlier run is replaced whole, anything else is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from sim.errors import InputError
from sim.results import store
from sim.results.store import MARKER, RunFolder, folder_name, write_run
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
        MARKER,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no folder set aside is left


def test_a_new_or_empty_folder_is_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert (_write(out) / "summary.json").is_file()


def test_a_folder_capsim_wrote_counts_as_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "notes.txt").write_text("part of the earlier run's folder")
    _write(out)
    assert not (out / "notes.txt").exists() and (out / MARKER).is_file()


@pytest.mark.parametrize("lookalike", ["summary.json", "scenario.resolved.yaml"])
def test_a_run_file_alone_does_not_make_a_run_folder(tmp_path: Path, lookalike: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / lookalike).write_text("{}")
    (out / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="is not a capsim run folder"):
        _write(out)
    assert _files(out) == {lookalike, "notes.txt"}


def test_a_folder_that_is_not_a_run_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "chapters" / "one.tex").write_text("precious")
    (out / "README").write_text("precious too")
    with pytest.raises(InputError) as refused:
        _write(out)
    message = str(refused.value)
    assert message.startswith(f"{out}: holds files but is not a capsim run folder")
    assert MARKER in message
    assert _files(out) == {"chapters", "chapters/one.tex", "README"}
    assert [p.name for p in tmp_path.iterdir()] == ["thesis"]  # no temporary folder either


def test_a_file_in_the_way_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.write_text("precious")
    with pytest.raises(InputError, match="is a file"):
        _write(out)
    assert out.read_text() == "precious"


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("../../etc", "etc"),
        ("/abs/path", "abs-path"),
        ("a b/c", "a-b-c"),
        ("..", "run"),
        ("quickstart.v2", "quickstart.v2"),
    ],
)
def test_scenario_names_cannot_escape_results(name: str, folder: str) -> None:
    assert folder_name(name) == folder


def test_an_unwritable_target_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot write the results there"):
        RunFolder(tmp_path / "file" / "run")


def test_without_an_atomic_exchange_a_kill_between_renames_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _write(tmp_path / "run")
    monkeypatch.setattr(store, "_exchange", lambda a, b: False)
    _write(out)  # the two-rename path
    assert (out / "summary.json").is_file()
    out.rename(tmp_path / ".run.capsim-old")  # killed after the first rename
    folder = RunFolder(out)  # the next run puts the earlier one back first
    assert (out / "summary.json").is_file()
    folder.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_next_run_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    dead = tmp_path / ".run.capsim-tmp-999999999-abc"  # no such process
    live = tmp_path / f".other.capsim-tmp-{os.getpid()}-abc"  # a run still writing
    mine = tmp_path / ".notes"  # not a capsim name
    for folder in (dead, live, mine):
        folder.mkdir()
    _write(tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, mine.name, "run"])


def test_a_slot_model_scenario_resolved_reloads_as_it_ran() -> None:
    """The resolved file states a slot pool's prefix caching as used (off), so it loads again
    (an explicit `prefix_caching: true` is refused for slot models) and means the same run."""
    from helpers import slot_scenario

    from sim.scenario_loader import parse_scenario

    scenario = slot_scenario(2, 1.0, 1.0, 100.0, seed=3)
    text = store.resolved_yaml(scenario)
    reloaded = parse_scenario(text, "scenario.resolved.yaml")
    assert reloaded.models["m"].pools["p"].prefix_caching is False
    assert store.resolved_yaml(reloaded) == text
