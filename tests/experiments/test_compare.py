"""`capsim compare`: variants x replications as run folders, intervals and paired differences."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import tables_equal

from sim.errors import InputError
from sim.experiments.compare import run_compare
from sim.experiments.intervals import replication_seeds
from sim.scenario_loader import load_scenario

SCENARIO = {
    "name": "cmp",
    "seed": 3,
    "duration_s": 300,
    "warmup_s": 30,
    "replications": 4,
    "models": {
        "m": {
            "architecture": "llama-3.1-8b",
            "pools": {
                "p": {
                    "replicas": 2,
                    "max_num_seqs": 1,
                    "perf": {"model": "exponential", "mean_service_s": 1.0},
                }
            },
            "routing": {"policy": "least_loaded"},
        }
    },
    "accounts": [{"name": "a"}],
    "traffic": [
        {
            "name": "t",
            "account": "a",
            "model": "m",
            "arrivals": {"process": "poisson", "rate_per_s": 1.5},
            "prompt_tokens": {"dist": "constant", "value": 10},
            "output_tokens": {"dist": "constant", "value": 5},
        }
    ],
    "variants": {"two": {}, "three": {"models.m.pools.p.replicas": 3}},
}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_compare_runs_every_variant_on_the_same_seeds_and_pairs_them(tmp_path: Path) -> None:
    path = _write(tmp_path, SCENARIO)
    out = tmp_path / "out"
    runs, table = run_compare(path, out, workers=1)
    seeds = replication_seeds(3, 4)
    assert runs["seed"].to_pylist() == seeds * 2
    for variant in ("two", "three"):
        for seed in seeds:
            assert (out / variant / f"seed={seed}" / "summary.json").is_file()
            assert (out / variant / f"seed={seed}" / "requests.parquet").is_file()
    # The variant's run is the plain scenario with its override (no variants left in it).
    resolved = yaml.safe_load(
        (out / "three" / f"seed={seeds[1]}" / "scenario.resolved.yaml").read_text()
    )
    assert resolved["models"]["m"]["pools"]["p"]["replicas"] == 3 and resolved["variants"] == {}
    assert tables_equal(pq.read_table(out / "compare.parquet"), table)
    rows = {(r["variant"], r["metric"]): r for r in table.to_pylist()}
    # Same seeds, same workload: as many requests in each replication of both variants.
    requests = rows[("three", "m.all.requests")]
    assert requests["diff_mean"] == 0 and requests["diff_ci_high"] == 0
    # A third replica cuts the wait; pairing removes the workload noise from the difference.
    two, three = rows[("two", "m.all.queue_s.mean")], rows[("three", "m.all.queue_s.mean")]
    assert three["diff_ci_high"] < 0
    paired_width = three["diff_ci_high"] - three["diff_ci_low"]
    assert paired_width < (two["ci_high"] - two["ci_low"]) + (three["ci_high"] - three["ci_low"])
    assert (
        rows[("two", "m.all.queue_s.mean")]["diff_mean"]
        != rows[("two", "m.all.queue_s.mean")]["diff_mean"]
    )  # NaN for the first


def test_compare_resumes_finished_runs_and_refuses_stale_ones(tmp_path: Path) -> None:
    small = {**SCENARIO, "replications": 2, "duration_s": 60, "warmup_s": 0}
    path = _write(tmp_path, small)
    out = tmp_path / "out"
    run_compare(path, out, workers=1)
    summary = next((out / "two").glob("seed=*/summary.json"))
    written = summary.stat().st_mtime_ns
    run_compare(path, out, workers=1)
    assert summary.stat().st_mtime_ns == written
    _write(tmp_path, {**small, "duration_s": 50})
    with pytest.raises(InputError, match="different scenario"):
        run_compare(path, out, workers=1)


def test_a_variant_may_not_set_the_seed(tmp_path: Path) -> None:
    path = _write(tmp_path, {**SCENARIO, "variants": {"a": {}, "b": {"seed": 4}}})
    with pytest.raises(InputError, match=r"variants\.b: seed: a variant cannot set seed"):
        load_scenario(path)
