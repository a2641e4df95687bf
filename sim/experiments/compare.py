"""`capsim compare`: the scenario's variants, each over the same replication seeds.

Every variant x replication is a run folder (`<out>/<variant>/seed=<seed>/`, the files of
`capsim run`). Variants share seeds, so with common random numbers they see the same workload:
the paired difference of a metric, replication by replication, leaves out the workload noise
that the two variants' own intervals include. Runs go through the sweep's executors (local
processes or Dask) and resume the same way: a finished run made from the same scenario is kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from sim.engine import Simulation
from sim.errors import InputError
from sim.experiments.intervals import interval, paired_difference, replication_seeds
from sim.experiments.sweep import (
    RunSpec,
    SweepProgress,
    execute_resumable,
    finished_run,
    metric_columns,
    same_scenario,
    summary_metrics,
    write_table,
)
from sim.results.store import check_replaceable
from sim.scenario import Scenario
from sim.scenario_loader import load_scenario, variant_overrides

TABLE_NAME = "compare.parquet"  # per variant and metric: interval, paired difference
RUNS_NAME = "compare_runs.parquet"  # per run: variant, replication, seed, metrics
BASE = "base"  # the variant name of a scenario without variants


def variants(scenario: Scenario) -> list[tuple[str, list[str]]]:
    """(name, overrides) of each variant in order; the scenario itself when it has none."""
    if not scenario.variants:
        return [(BASE, [])]
    return [(name, variant_overrides(scenario, name)) for name in scenario.variants]


def run_compare(
    scenario_path: Path,
    out_dir: Path,
    workers: int,
    scheduler: str | None = None,
    plots: bool = False,
    progress: SweepProgress | None = None,
    settings: Sequence[str] = (),
) -> tuple[pa.Table, pa.Table]:
    """Run every variant x replication not already finished; write and return the per-run
    table and the comparison table."""
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    path, out = scenario_path.resolve(), out_dir.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, and a comparison's results are a folder")
    base = load_scenario(path, list(settings))
    seeds = replication_seeds(base.seed, base.replications)
    specs: list[RunSpec] = []
    labels: list[tuple[str, int, int]] = []
    stale: list[str] = []
    for name, overrides in variants(base):
        scenario = load_scenario(path, [*settings, *overrides])
        Simulation(scenario)  # what only building finds (a model that does not fit its GPUs)
        for replication, seed in enumerate(seeds):
            spec = RunSpec(
                f"{name}/seed={seed}",
                str(path),
                (*settings, *overrides, f"seed={seed}"),
                str(out / name / f"seed={seed}"),
                plots,
            )
            check_replaceable(Path(spec.run_dir))
            if finished_run(spec) and not same_scenario(spec, scenario, seed):
                stale.append(spec.name)
            specs.append(spec)
            labels.append((name, replication, seed))
    if stale:
        raise InputError(
            f"{out}: {len(stale)} finished run(s) were made from a different scenario "
            f"(e.g. {stale[0]}); delete them or compare into another --out"
        )
    execute_resumable(specs, workers, scheduler, progress)
    rows = [json.loads((Path(spec.run_dir) / "summary.json").read_text()) for spec in specs]
    runs = pa.table(
        {
            "variant": [name for name, _, _ in labels],
            "replication": [replication for _, replication, _ in labels],
            "seed": [seed for _, _, seed in labels],
            "run_dir": [str(Path(spec.run_dir).relative_to(out)) for spec in specs],
            **metric_columns([summary_metrics(summary) for summary in rows]),
        }
    )
    table = compare_table(runs)
    write_table(runs, out / RUNS_NAME)
    write_table(table, out / TABLE_NAME)
    return runs, table


def compare_table(runs: pa.Table) -> pa.Table:
    """Per variant and metric: replications, mean and 95% interval over them, and the paired
    difference from the first variant (same seeds) with its 95% interval (NaN for the first)."""
    names = list(dict.fromkeys(runs["variant"].to_pylist()))
    variant = np.array(runs["variant"].to_pylist(), dtype=object)
    order = np.array(runs["replication"].to_pylist())
    metrics = [
        name
        for name in runs.column_names[4:]
        if pa.types.is_floating(runs[name].type) or pa.types.is_integer(runs[name].type)
    ]
    out: dict[str, list] = {
        key: []
        for key in (
            "variant",
            "metric",
            "replications",
            "mean",
            "ci_low",
            "ci_high",
            "diff_mean",
            "diff_ci_low",
            "diff_ci_high",
        )
    }
    for metric in metrics:
        values = runs[metric].to_numpy(zero_copy_only=False).astype(float)
        by_variant = {
            name: values[variant == name][np.argsort(order[variant == name])] for name in names
        }
        baseline = by_variant[names[0]]
        for name in names:
            mine = by_variant[name]
            mean, low, high = interval(mine)
            diff = (
                paired_difference(baseline, mine) if name != names[0] else (np.nan, np.nan, np.nan)
            )
            out["variant"].append(name)
            out["metric"].append(metric)
            out["replications"].append(int((~np.isnan(mine)).sum()))
            for key, value in zip(("mean", "ci_low", "ci_high"), (mean, low, high), strict=True):
                out[key].append(value)
            for key, value in zip(("diff_mean", "diff_ci_low", "diff_ci_high"), diff, strict=True):
                out[key].append(float(value))
    return pa.table(out)
