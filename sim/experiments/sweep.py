"""A grid of scenario parameters x seeds, one run each, on local worker processes or a Dask cluster.

Grid rule: each `--grid` entry is `dotted.path=v1,v2,...` (the path as in `capsim run --set`). The
values are split at commas that are not inside brackets, braces or quotes, and each piece is a
YAML value, so a value that itself holds commas is written as a YAML flow list or mapping:
`models.m.pools.p.tiers=[standard,priority],[batch]` has the two values `[standard,priority]`
and `[batch]`. The grid is the cartesian product of the entries, the first entry varying slowest.

Seeds: the `seed` field is set per run, so a sweep of G grid points x S seeds is G*S runs, each in
`out_dir/<run name>/` (`replicas=8,rate_per_s=10,seed=2`). A run whose folder holds summary.json
is finished (runs are written to a temporary folder and moved into place) and is not run again,
provided its resolved scenario is the one this sweep would run; otherwise the sweep refuses.

Runs receive the scenario path and override strings, not scenario objects: a worker loads the
scenario itself, so the path and `out_dir` must be visible to every worker (on a Dask cluster:
a shared filesystem).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from sim.engine import Simulation
from sim.errors import InputError
from sim.experiments.intervals import interval
from sim.experiments.runner import run_scenario
from sim.results.provenance import Origin
from sim.results.store import check_replaceable, resolved_data
from sim.scenario import Scenario
from sim.scenario_loader import load_scenario

TABLE_NAME = "sweep.parquet"
INTERVALS_NAME = "sweep_intervals.parquet"
MAX_RUN_NAME_CHARS = 120  # longer names are cut and get a hash suffix
_SAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
_LATENCY_COLUMNS = ("ttft_s", "tpot_s", "e2e_s", "queue_s")
_STATISTICS = ("mean", "p50", "p90", "p99")
_RESERVED_COLUMNS = ("seed", "run_dir")


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: what a worker needs, all plain strings (cheap to send anywhere)."""

    name: str
    scenario_path: str
    overrides: tuple[str, ...]
    run_dir: str
    plots: bool


@dataclass(frozen=True)
class RunDone:
    """Progress report: one more run is finished (`resumed`: found finished on disk)."""

    name: str
    done: int
    total: int
    resumed: bool


SweepProgress = Callable[[RunDone], None]


class RunFailed(Exception):
    """A run raised: carries the run's name and the worker's traceback as text."""

    def __init__(self, name: str, message: str, details: str) -> None:
        super().__init__(name, message, details)
        self.name, self.message, self.details = name, message, details

    def __str__(self) -> str:
        return f"run {self.name}: {self.message}"


class SweepFailed(Exception):
    """Some runs failed; the others finished and will be resumed by the next call."""

    def __init__(self, failures: list[RunFailed]) -> None:
        super().__init__(failures)
        self.failures = failures

    def __str__(self) -> str:
        names = ", ".join(f.name for f in self.failures)
        return f"{len(self.failures)} run(s) failed: {names}\n" + "\n".join(
            str(f) for f in self.failures
        )


# --- grid and seeds ------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """`text` split at commas outside brackets, braces and quotes (see the module docstring)."""
    pieces, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:i].strip())
            start = i + 1
    pieces.append(text[start:].strip())
    return pieces


def _grid_axis(entry: str) -> tuple[str, list[str]]:
    path, sep, text = entry.partition("=")
    path = path.strip()
    if not sep or not path or not text.strip():
        raise InputError(f"--grid {entry!r}: expected dotted.path=value1,value2,...")
    if path == "seed":
        raise InputError(f"--grid {entry!r}: the seed is swept with --seeds")
    values = split_values(text)
    for value in values:
        if not value:
            raise InputError(f"--grid {entry!r}: empty value")
        try:
            yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise InputError(f"--grid {entry!r}: {value!r} is not a YAML value: {error}") from None
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise InputError(f"--grid {entry!r}: repeated value(s) {', '.join(duplicates)}")
    return path, values


def expand_grid(grid: list[str]) -> list[dict[str, str]]:
    """Grid points, each a {dotted path: YAML value text}; the first entry varies slowest."""
    axes = [_grid_axis(entry) for entry in grid]
    paths = [path for path, _ in axes]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise InputError(f"--grid: {', '.join(repeated)} given more than once")
    return [
        dict(zip(paths, point, strict=True))
        for point in itertools.product(*(values for _, values in axes))
    ]


MAX_SEEDS = 100_000


def parse_seeds(text: str) -> list[int]:
    """Seeds from `1,2,3` or inclusive ranges `0-9` (mixable: `0-3,10`), in the given order."""
    seeds: list[int] = []
    for piece in text.split(","):
        low, dash, high = piece.strip().partition("-")
        try:
            span = range(int(low), int(high) + 1) if dash else range(int(low), int(low) + 1)
        except ValueError:
            raise InputError(f"--seeds {text!r}: expected seeds like 1,2,3 or 0-9") from None
        if dash and not span:
            raise InputError(f"--seeds {text!r}: empty range {piece.strip()!r}")
        if len(seeds) + len(span) > MAX_SEEDS:
            raise InputError(
                f"--seeds {text!r}: {len(seeds) + len(span):,} seeds or more, at most "
                f"{MAX_SEEDS:,} (each is a whole run)"
            )
        seeds.extend(span)
    counts = collections.Counter(seeds)
    repeated = sorted(s for s, n in counts.items() if n > 1)
    if repeated:
        raise InputError(f"--seeds {text!r}: repeated seed(s) {repeated}")
    return seeds


def column_names(paths: list[str]) -> dict[str, str]:
    """Table column per grid path: its last component, or the whole path where that is ambiguous."""
    last = {path: path.rsplit(".", 1)[-1] for path in paths}
    taken = list(last.values())
    return {
        path: short if taken.count(short) == 1 and short not in _RESERVED_COLUMNS else path
        for path, short in last.items()
    }


def run_name(point: dict[str, str], columns: dict[str, str], seed: int) -> str:
    """A readable, filesystem-safe folder name; unsafe or long names get a short hash suffix."""
    raw = ",".join([*(f"{columns[p]}={v}" for p, v in point.items()), f"seed={seed}"])
    return safe_name(raw, repr((sorted(point.items()), seed)))


def safe_name(raw: str, identity: str | None = None) -> str:
    """`raw` if it is a safe, short folder name; else cut, made safe, with a hash suffix of
    `identity` (default `raw`)."""
    safe = _SAFE.sub("_", raw)
    if safe == raw and len(raw) <= MAX_RUN_NAME_CHARS:
        return raw
    digest = hashlib.sha1((identity or raw).encode()).hexdigest()[:8]
    return f"{safe[: MAX_RUN_NAME_CHARS - 9]}~{digest}"


# --- running -------------------------------------------------------------------------------------


def run_sweep(
    scenario_path: Path,
    grid: list[str],
    seeds: list[int],
    out_dir: Path,
    workers: int,
    scheduler: str | None = None,
    plots: bool = False,
    progress: SweepProgress | None = None,
    settings: tuple[str, ...] = (),
) -> pa.Table:
    """Run every (grid point, seed) not already finished, then write and return sweep.parquet
    (one row per run) and sweep_intervals.parquet (per grid point and metric: the mean over
    seeds and its 95% interval).

    `settings` are `--set` overrides applied to every run before the grid point's values.
    Every grid point is validated before any run starts, so a bad value costs nothing.
    """
    if not seeds:
        raise InputError("--seeds: at least one seed")
    if min(seeds) < 0:
        raise InputError(f"--seeds: seeds are >= 0, got {min(seeds)}")
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    points = expand_grid(grid)
    columns = column_names(list(points[0]))
    specs = _plan(
        scenario_path.resolve(), settings, points, columns, seeds, out_dir.resolve(), plots
    )
    execute_resumable(specs, workers, scheduler, progress)
    table = _table(specs, points, columns, seeds, out_dir.resolve())
    write_table(table, out_dir.resolve() / TABLE_NAME)
    grid_names = [columns[path] for path in columns]
    write_table(intervals_table(table, grid_names), out_dir.resolve() / INTERVALS_NAME)
    return table


def execute_resumable(
    specs: list[RunSpec], workers: int, scheduler: str | None, progress: SweepProgress | None
) -> None:
    """Run the specs whose folder holds no finished run (resumed ones are reported first);
    SweepFailed if any failed (the others stay finished for the next call)."""
    resumed = [spec for spec in specs if finished_run(spec)]
    if progress is not None:
        for i, spec in enumerate(resumed):
            progress(RunDone(spec.name, i + 1, len(specs), resumed=True))
    todo = [spec for spec in specs if spec not in resumed]
    _execute(todo, workers, scheduler, _counting(progress, len(resumed), len(specs)))


def _plan(
    scenario_path: Path,
    settings: tuple[str, ...],
    points: list[dict[str, str]],
    columns: dict[str, str],
    seeds: list[int],
    out_dir: Path,
    plots: bool,
) -> list[RunSpec]:
    """The runs, after validating every grid point, checking finished runs still match and that
    no run folder would replace files that are not a run's."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file, and a sweep's results are a folder")
    specs, stale = [], []
    for point in points:
        overrides = [*settings, *(f"{path}={value}" for path, value in point.items())]
        scenario = validated(scenario_path, overrides, point, columns)
        for seed in seeds:
            name = run_name(point, columns, seed)
            spec = RunSpec(
                name,
                str(scenario_path),
                (*overrides, f"seed={seed}"),
                str(out_dir / name),
                plots,
            )
            check_replaceable(Path(spec.run_dir))
            if finished_run(spec) and not same_scenario(spec, scenario, seed):
                stale.append(name)
            specs.append(spec)
    if stale:
        raise InputError(
            f"{out_dir}: {len(stale)} finished run(s) were made from a different scenario "
            f"(e.g. {stale[0]}); delete them or sweep into another --out"
        )
    return specs


def validated(
    path: Path, overrides: list[str], point: dict[str, str], columns: dict[str, str]
) -> Scenario:
    """The scenario at one grid point (before the seed is set), or InputError naming the point.

    The world is built too (and dropped: milliseconds) to catch what only building finds, such as
    a model that does not fit on its GPUs.
    """
    try:
        scenario = load_scenario(path, overrides)
        Simulation(scenario)
        return scenario
    except InputError as error:
        where = ",".join(f"{columns[p]}={v}" for p, v in point.items()) or "(no grid)"
        raise InputError(f"grid point {where}:\n{error}") from None


def finished_run(spec: RunSpec) -> bool:
    return (Path(spec.run_dir) / "summary.json").is_file()


def same_scenario(spec: RunSpec, scenario: Scenario, seed: int) -> bool:
    """Compared as data, not text, so a change in how YAML is written does not count."""
    written = Path(spec.run_dir) / "scenario.resolved.yaml"
    expected = resolved_data(scenario.model_copy(update={"seed": seed}))
    return written.is_file() and yaml.safe_load(written.read_text()) == expected


def run_one(spec: RunSpec) -> str:
    """Worker entry point: load, run and write one run; any error is re-raised with its name."""
    try:
        scenario = load_scenario(Path(spec.scenario_path), spec.overrides)
        origin = Origin(spec.scenario_path, spec.overrides)
        run_scenario(scenario, Path(spec.run_dir), plots=spec.plots, origin=origin)
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        raise RunFailed(spec.name, message, traceback.format_exc()) from None
    return spec.name


def _counting(progress: SweepProgress | None, already: int, total: int) -> Callable[[str], None]:
    """A per-run callback that numbers finished runs after the `already` resumed ones."""
    counter = itertools.count(already + 1)

    def finished(name: str) -> None:
        done = next(counter)
        if progress is not None:
            progress(RunDone(name, done, total, resumed=False))

    return finished


def _execute(
    specs: list[RunSpec], workers: int, scheduler: str | None, finished: Callable[[str], None]
) -> None:
    if not specs:
        return
    if scheduler is not None:
        outcomes = _on_dask(specs, scheduler)
    elif workers == 1:
        outcomes = _in_process(specs)
    else:
        outcomes = _on_processes(specs, min(workers, len(specs)))
    failures = []
    for name, failure in outcomes:
        if failure is None:
            finished(name)
        else:
            failures.append(failure)
    if failures:
        raise SweepFailed(failures)


Outcome = tuple[str, RunFailed | None]


def _in_process(specs: list[RunSpec]) -> Iterator[Outcome]:
    for spec in specs:
        try:
            yield run_one(spec), None
        except RunFailed as failure:
            yield spec.name, failure


def _on_processes(specs: list[RunSpec], workers: int) -> Iterator[Outcome]:
    # spawn: a fresh interpreter per worker, safe beside the parent's threads (progress bars).
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        pending: dict[Future[str], RunSpec] = {pool.submit(run_one, s): s for s in specs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield _outcome(pending.pop(future), future)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): stop the runs in flight too, not only the queued ones.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()  # the worker's SIGTERM handler removes its temporary folder
        raise
    finally:
        pool.shutdown(cancel_futures=True)  # on an interrupt, queued runs never start


def _end_with_parent(parent_pid: int) -> None:
    """In a worker: SIGTERM ends a run as Ctrl-C does (its temporary folder removed), and the
    worker exits when its parent is gone (killed, even by SIGKILL) instead of living on as an
    orphan holding its memory."""
    from sim.cli import interrupt_on_sigterm

    interrupt_on_sigterm()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _on_dask(specs: list[RunSpec], scheduler: str) -> Iterator[Outcome]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(
            "--scheduler needs Dask's distributed package: pip install 'capsim[cluster]'"
        ) from None
    try:
        client = Client(scheduler)
    except OSError as error:
        raise InputError(f"--scheduler {scheduler}: cannot connect: {error}") from None
    with client:
        futures = client.map(run_one, specs, pure=False)
        by_key = {future.key: spec for future, spec in zip(futures, specs, strict=True)}
        for future in as_completed(futures):
            yield _outcome(by_key[future.key], future)


def _outcome(spec: RunSpec, future: Any) -> Outcome:
    """A finished future as (name, failure or None); a worker that died is a failure too."""
    try:
        future.result()
    except RunFailed as failure:
        return spec.name, failure
    except Exception as error:
        message = f"the worker failed: {type(error).__name__}: {error}"
        return spec.name, RunFailed(spec.name, message, traceback.format_exc())
    return spec.name, None


# --- the results table ---------------------------------------------------------------------------


def _table(
    specs: list[RunSpec],
    points: list[dict[str, str]],
    columns: dict[str, str],
    seeds: list[int],
    out_dir: Path,
) -> pa.Table:
    """One row per run in grid x seed order: grid values, seed, run_dir (relative to the table's
    folder) and the metrics of the run's summary.json."""
    rows = [
        {"seed": seed, "run_dir": spec.name, **_run_metrics(Path(spec.run_dir))}
        for spec, (_, seed) in zip(specs, itertools.product(points, seeds), strict=True)
    ]
    grid_columns = {
        columns[path]: _typed_column([point[path] for point in points for _ in seeds])
        for path in columns
    }
    return pa.table({**grid_columns, **metric_columns(rows)})


def metric_columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Columns of per-run metric rows; a status no request of a run got is a share of 0, any
    other metric a run lacks (a model or tier it did not have) is null."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {
        name: pa.array([row.get(name, 0.0 if ".status_" in name else None) for row in rows])
        for name in names
    }


def _typed_column(texts: list[str]) -> pa.Array:
    """Grid values as numbers or booleans when all of them are, else as their YAML text."""
    values = [yaml.safe_load(text) for text in texts]
    if all(isinstance(v, bool) for v in values):
        return pa.array(values, pa.bool_())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.array(values, pa.int64())
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.array([float(v) for v in values], pa.float64())
    return pa.array(texts, pa.string())


def _run_metrics(run_dir: Path) -> dict[str, float | int]:
    return summary_metrics(json.loads((run_dir / "summary.json").read_text()))


def summary_metrics(summary: dict[str, Any]) -> dict[str, float | int]:
    """Key metrics of one run, flat: `<model>.<tier or all>.<metric>`, `pools.<model>.<pool>.*`."""
    metrics: dict[str, float | int] = {}
    window_s = summary["measured_window_s"]
    for model, data in summary["models"].items():
        for tier, group in {"all": data["all"], **data["tiers"]}.items():
            for name, value in _group_metrics(group, window_s).items():
                metrics[f"{model}.{tier}.{name}"] = value
    for pool in summary["pools"]:
        prefix = f"pools.{pool['model']}.{pool['pool']}"
        metrics[f"{prefix}.utilisation"] = pool["utilisation"]
        metrics[f"{prefix}.kv_use_mean"] = pool["kv_use_mean"]
        metrics[f"{prefix}.waiting_mean"] = pool["waiting_mean"]
        for name in ("generated_tps_per_request_p50", "generated_tps_per_request_mean"):
            value = pool.get(name)
            if value is not None:  # null where no request decoded (a slot model): no metric
                metrics[f"{prefix}.{name}"] = value
    return metrics


def _group_metrics(group: dict[str, Any], window_s: float) -> dict[str, float | int]:
    throughput = group["throughput"]
    metrics: dict[str, float | int] = {
        "requests": group["requests"],
        "served": group["by_status"].get("200", 0),
        "requests_per_s": throughput["requests_per_s"],
        "tokens_per_s": throughput["prompt_tokens_per_s"] + throughput["completion_tokens_per_s"],
        "revenue_usd_per_s": group.get("revenue_usd", 0.0) / window_s,
    }
    for latency in _LATENCY_COLUMNS:
        stats = group[latency]
        for statistic in _STATISTICS:
            metrics[f"{latency}.{statistic}"] = stats.get(statistic, float("nan"))
    metrics["cache_hit_ratio"] = group["cache_hit_ratio"]
    for code, count in group["by_status"].items():
        metrics[f"status_{code}_share"] = count / group["requests"] if group["requests"] else 0.0
    return metrics


def write_table(table: pa.Table, path: Path) -> None:
    """Written under a temporary name and renamed, so a reader never sees half a table."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def intervals_table(runs: pa.Table, group_by: list[str]) -> pa.Table:
    """Long form, one row per group (values of `group_by`) and metric: replications, the mean
    over them and its 95% Student t interval (NaN bounds with one replication)."""
    skip = (*group_by, *_RESERVED_COLUMNS, "replication")
    metrics = [
        name
        for name in runs.column_names
        if name not in skip
        and (pa.types.is_floating(runs[name].type) or pa.types.is_integer(runs[name].type))
    ]
    columns = [runs[name].to_pylist() for name in group_by]
    keys = list(zip(*columns, strict=True)) if columns else [()] * runs.num_rows
    groups: dict[tuple, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    out: dict[str, list] = {name: [] for name in (*group_by, "metric", *INTERVAL_COLUMNS)}
    for key, rows in groups.items():
        for metric in metrics:
            values = runs[metric].take(rows).to_numpy(zero_copy_only=False).astype(float)
            mean, low, high = interval(values)
            for name, value in zip(group_by, key, strict=True):
                out[name].append(value)
            out["metric"].append(metric)
            out["replications"].append(int((~np.isnan(values)).sum()))
            out["mean"].append(mean)
            out["ci_low"].append(low)
            out["ci_high"].append(high)
    return pa.table(out)


INTERVAL_COLUMNS = ("replications", "mean", "ci_low", "ci_high")
