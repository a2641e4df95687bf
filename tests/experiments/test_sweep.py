"""capsim sweep: grid expansion, one row per run, resuming, reproducibility across workers."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import tables_equal

from sim.errors import InputError
from sim.experiments.sweep import (
    RunDone,
    SweepFailed,
    column_names,
    expand_grid,
    parse_seeds,
    run_name,
    run_sweep,
    split_values,
)
from sim.results.store import RunFolder

TINY = {
    "name": "tiny",
    "seed": 0,
    "duration_s": 30,
    "warmup_s": 3,
    "drain_s": 30,
    "models": {
        "m": {
            "architecture": "llama-3.1-8b",
            "pools": {
                "p": {
                    "replicas": 1,
                    "max_num_seqs": 4,
                    "perf": {"model": "exponential", "mean_service_s": 0.5},
                }
            },
        }
    },
    "accounts": [{"name": "a"}],
    "traffic": [
        {
            "name": "t",
            "account": "a",
            "model": "m",
            "arrivals": {"process": "poisson", "rate_per_s": 4},
            "prompt_tokens": {"dist": "constant", "value": 100},
            "output_tokens": {"dist": "constant", "value": 10},
            "tier_mix": {"standard": 0.8, "priority": 0.2},
        }
    ],
}
GRID = ["models.m.pools.p.replicas=1,2", "traffic.0.arrivals.rate_per_s=3,6.5"]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_split_values_keeps_commas_inside_brackets_and_quotes() -> None:
    assert split_values("1, 2,3") == ["1", "2", "3"]
    assert split_values("[standard,priority],[batch]") == ["[standard,priority]", "[batch]"]
    assert split_values("{policy: affinity, bounded_load: 1.5},'a,b'") == [
        "{policy: affinity, bounded_load: 1.5}",
        "'a,b'",
    ]


def test_expand_grid_is_the_product_with_the_first_entry_slowest() -> None:
    assert expand_grid(["a.x=1,2", "b.y=p,q,r"]) == [
        {"a.x": "1", "b.y": "p"},
        {"a.x": "1", "b.y": "q"},
        {"a.x": "1", "b.y": "r"},
        {"a.x": "2", "b.y": "p"},
        {"a.x": "2", "b.y": "q"},
        {"a.x": "2", "b.y": "r"},
    ]
    assert expand_grid([]) == [{}]


@pytest.mark.parametrize("entry", ["nopath", "a.x=", "a.x=1,,2", "a.x=1,1", "seed=1,2", "a.x=[1,2"])
def test_bad_grid_entries_are_input_errors(entry: str) -> None:
    with pytest.raises(InputError):
        expand_grid([entry])


def test_seeds_are_lists_or_inclusive_ranges() -> None:
    assert parse_seeds("3") == [3]
    assert parse_seeds("1,2,5") == [1, 2, 5]
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("x", "3-1", "1,1"):
        with pytest.raises(InputError):
            parse_seeds(bad)


def test_columns_use_the_full_path_only_where_the_last_part_is_ambiguous() -> None:
    assert column_names(["a.rate", "b.rate", "c.replicas"]) == {
        "a.rate": "a.rate",
        "b.rate": "b.rate",
        "c.replicas": "replicas",
    }


def test_run_names_are_readable_and_safe() -> None:
    columns = {"x.replicas": "replicas", "x.tiers": "tiers"}
    assert run_name({"x.replicas": "8"}, columns, 2) == "replicas=8,seed=2"
    unsafe = run_name({"x.tiers": "[a/b]"}, columns, 0)
    assert "/" not in unsafe and unsafe.startswith("tiers=_a_b_") and "~" in unsafe
    long = run_name({"x.tiers": "y" * 300}, columns, 0)
    assert len(long) <= 120


def test_table_has_one_row_per_run_with_its_grid_values(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    table = run_sweep(scenario, GRID, [1, 2], out, workers=1)
    assert table.num_rows == 8
    rows = table.to_pylist()
    assert [(r["replicas"], r["rate_per_s"], r["seed"]) for r in rows] == [
        (replicas, rate, seed) for replicas in (1, 2) for rate in (3.0, 6.5) for seed in (1, 2)
    ]
    assert rows[0]["run_dir"] == "replicas=1,rate_per_s=3,seed=1"
    for row in rows:
        run = yaml.safe_load((out / row["run_dir"] / "scenario.resolved.yaml").read_text())
        assert run["models"]["m"]["pools"]["p"]["replicas"] == row["replicas"]
        assert run["traffic"][0]["arrivals"]["rate_per_s"] == row["rate_per_s"]
        assert run["seed"] == row["seed"]
        assert row["m.all.served"] > 0
        assert row["m.priority.requests"] + row["m.standard.requests"] == row["m.all.requests"]
    for column in ("m.standard.ttft_s.p99", "m.all.cache_hit_ratio", "pools.m.p.utilisation"):
        assert column in table.column_names
    assert tables_equal(pq.read_table(out / "sweep.parquet"), table)


def test_a_second_call_runs_nothing(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    first = run_sweep(scenario, GRID[:1], [0], out, workers=1)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    reports: list[RunDone] = []
    second = run_sweep(scenario, GRID[:1], [0], out, workers=1, progress=reports.append)
    assert [r.resumed for r in reports] == [True, True]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == stamps
    assert tables_equal(second, first)


def test_a_changed_scenario_is_not_mistaken_for_finished_runs(
    scenario: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    run_sweep(scenario, [], [0], out, workers=1)
    scenario.write_text(yaml.safe_dump({**TINY, "duration_s": 20}))
    with pytest.raises(InputError, match="different scenario"):
        run_sweep(scenario, [], [0], out, workers=1)


def test_same_seed_same_metrics_with_one_or_two_workers(scenario: Path, tmp_path: Path) -> None:
    one = run_sweep(scenario, GRID[1:], [5, 6], tmp_path / "one", workers=1)
    two = run_sweep(scenario, GRID[1:], [5, 6], tmp_path / "two", workers=2)
    assert tables_equal(one, two)


def test_a_bad_grid_value_fails_before_any_run(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with pytest.raises(InputError, match="replicas=0"):
        run_sweep(scenario, ["models.m.pools.p.replicas=1,0"], [0, 1], out, workers=1)
    assert not out.exists() or not any(out.iterdir())


def test_a_world_that_cannot_be_built_fails_before_any_run(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    grid = ["models.m.pools.p.perf={model: roofline}", "models.m.architecture=llama-3.1-70b"]
    with pytest.raises(InputError, match="does not fit"):
        run_sweep(scenario, grid, [0], out, workers=1)


def test_a_failing_run_is_reported_by_name(
    scenario: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sweep"
    commit = RunFolder.commit

    def full_disk_for_one(folder: RunFolder) -> Path:
        if folder.out_dir.name == "replicas=1,seed=0":
            raise OSError(28, "No space left on device")
        return commit(folder)

    monkeypatch.setattr(RunFolder, "commit", full_disk_for_one)  # in process: workers=1
    with pytest.raises(SweepFailed) as failed:
        run_sweep(scenario, ["models.m.pools.p.replicas=1,2"], [0], out, workers=1)
    assert [f.name for f in failed.value.failures] == ["replicas=1,seed=0"]
    assert "run replicas=1,seed=0: " in str(failed.value)
    assert (out / "replicas=2,seed=0" / "summary.json").is_file()


def test_a_missing_dask_is_an_input_error(
    scenario: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(InputError, match=r"capsim\[cluster\]"):
        run_sweep(scenario, [], [0], tmp_path / "sweep", workers=1, scheduler="tcp://nowhere:1")


def test_an_out_that_is_a_file_is_refused_and_kept(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.write_text("precious")
    with pytest.raises(InputError, match="is a file"):
        run_sweep(scenario, [], [0], out, workers=1)
    assert out.read_text() == "precious"


def test_a_sweep_on_a_dask_local_cluster_matches_the_local_one(
    scenario: Path, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    grid = ["models.m.pools.p.replicas=1,2"]
    local = run_sweep(scenario, grid, [0, 1], tmp_path / "local", workers=1)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        on_dask = run_sweep(
            scenario,
            grid,
            [0, 1],
            tmp_path / "dask",
            workers=1,
            scheduler=cluster.scheduler_address,
        )
    assert tables_equal(local, on_dask)
    intervals = pq.read_table(tmp_path / "dask" / "sweep_intervals.parquet")
    assert set(intervals["replicas"].to_pylist()) == {1, 2}
    assert set(intervals["replications"].to_pylist()) == {2}


def test_sweep_settings_apply_to_every_run(scenario: Path, tmp_path: Path) -> None:
    table = run_sweep(
        scenario,
        ["models.m.pools.p.replicas=1,2"],
        [0],
        tmp_path / "s",
        workers=1,
        settings=("traffic.0.arrivals.rate_per_s=1",),
    )
    for run_dir in table["run_dir"].to_pylist():
        resolved = yaml.safe_load((tmp_path / "s" / run_dir / "scenario.resolved.yaml").read_text())
        assert resolved["traffic"][0]["arrivals"]["rate_per_s"] == 1
