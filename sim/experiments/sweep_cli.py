"""`capsim sweep`: the command body, registered in sim.cli with `app.command("sweep")(...)`.

Heavy modules are imported inside the command so that `capsim run` does not pay for them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    import pyarrow as pa

    from sim.experiments.sweep import RunDone, SweepFailed

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

# The executor options that sweep, compare and plan share.
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="Local worker processes (default: the CPUs available)"),
]
DaskOption = Annotated[
    str | None,
    typer.Option(help="Run on a Dask cluster at tcp://host:port (pip install capsim\\[cluster])"),
]


def runs_bar(label: str, quiet: bool, total_known: bool = True) -> Progress:
    """The progress bar over an experiment's runs (on stderr, gone when done)."""
    counts = [MofNCompleteColumn(), TextColumn("runs · {task.description}")]
    if not total_known:
        counts = [TextColumn("{task.completed} runs · {task.description}")]
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=True,
    )


class RunCounter:
    """The progress callback of a search (plan, dedicated): it counts runs on a bar of
    `runs_bar(..., total_known=False)`, as the search decides the next runs as it goes."""

    def __init__(self, bar: Progress) -> None:
        self.bar, self.task, self.count = bar, bar.add_task("", total=None), 0

    def __call__(self, report: RunDone) -> None:
        self.count += 1
        self.bar.update(self.task, completed=self.count, description=report.name)


def exit_failed(failed: SweepFailed) -> NoReturn:
    """A run of the experiment failed: say which and why, exit 1."""
    err.print(str(failed), markup=False, highlight=False)
    err.print(failed.failures[0].details, markup=False, highlight=False)
    raise typer.Exit(1) from None


def sweep_command(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="A swept field: dotted.path=v1,v2,... (YAML values; commas inside [...], {...} "
            "or quotes do not split); repeatable, the runs are the product of all --grid",
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field of every run: dotted.path=value (YAML value), as in "
            "`capsim run`; repeatable",
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Seeds of every grid point: a list 1,2,3 or an inclusive range 0-9 "
            "(default: the scenario's `replications` seeds, derived from its seed)"
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Sweep folder (default results/<scenario name>-sweep)"),
    ] = None,
    workers: WorkersOption = None,
    scheduler: DaskOption = None,
    plots: Annotated[bool, typer.Option("--plots", help="Write each run's PNG plots")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table")] = False,
) -> None:
    """Run a grid of parameters x seeds (resumable) and write sweep.parquet, one row per run."""
    from sim.experiments.intervals import replication_seeds
    from sim.experiments.sweep import (
        SweepFailed,
        expand_grid,
        parse_seeds,
        run_sweep,
    )
    from sim.results.provenance import write_command_info
    from sim.results.store import folder_name
    from sim.scenario_loader import load_scenario

    grid = grid or []
    sets = tuple(settings or [])
    points = expand_grid(grid)
    base = load_scenario(scenario_path, [*sets, *(f"{p}={v}" for p, v in points[0].items())])
    seed_list = (
        parse_seeds(seeds) if seeds is not None else replication_seeds(base.seed, base.replications)
    )
    target = out_dir or Path("results") / f"{folder_name(base.name)}-sweep"
    total = len(points) * len(seed_list)
    resumed = 0
    started = time.perf_counter()
    with runs_bar("sweep", quiet) as bar:
        task = bar.add_task("", total=total)

        def advance(report: RunDone) -> None:
            nonlocal resumed
            resumed += report.resumed
            bar.update(task, completed=report.done, description=report.name)

        try:
            table = run_sweep(
                scenario_path,
                grid,
                seed_list,
                target,
                workers or _cpus(),
                scheduler,
                plots,
                advance,
                sets,
            )
            write_command_info(target)
        except SweepFailed as failed:
            exit_failed(failed)
    if not quiet:
        _print_table(table)
        err.print(
            f"{total} runs ({total - resumed} simulated now, {resumed} already done) in "
            f"{time.perf_counter() - started:.1f} s; table: {target / 'sweep.parquet'}"
        )


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_SHOWN = (  # (column suffix after "<model>.all.", header, scale, format)
    ("served", "served", 1.0, "{:,.0f}"),
    ("requests_per_s", "req/s", 1.0, "{:.2f}"),
    ("ttft_s.mean", "TTFT mean s", 1.0, "{:.3g}"),
    ("ttft_s.p50", "TTFT p50 s", 1.0, "{:.3g}"),
    ("ttft_s.p99", "TTFT p99 s", 1.0, "{:.3g}"),
    ("tpot_s.mean", "TPOT mean ms", 1000.0, "{:.3g}"),
    ("tpot_s.p99", "TPOT p99 ms", 1000.0, "{:.3g}"),
    ("e2e_s.p99", "E2E p99 s", 1.0, "{:.3g}"),
    ("cache_hit_ratio", "cache hit", 100.0, "{:.1f}%"),
)


def _print_table(table: pa.Table) -> None:
    """One line per run and model: the grid values, the seed, and latency and throughput."""
    names = table.column_names
    grid_columns = names[: names.index("seed") + 1]
    models = [
        name.removesuffix(".all.requests") for name in names if name.endswith(".all.requests")
    ]
    view = Table(title="sweep (all tiers, after warm-up)", title_justify="left")
    for column in grid_columns:
        view.add_column(column, justify="right")
    if len(models) > 1:
        view.add_column("model")
    for _, header, _, _ in _SHOWN:
        view.add_column(header, justify="right")
    for row in table.to_pylist():
        for model in models:
            cells = [str(row[column]) for column in grid_columns]
            cells += [model] if len(models) > 1 else []
            cells += [
                _cell(row.get(f"{model}.all.{key}"), scale, fmt) for key, _, scale, fmt in _SHOWN
            ]
            view.add_row(*cells)
    out.print(view)


def _cell(value: float | None, scale: float, fmt: str) -> str:
    if value is None or value != value:  # missing model in this run, or no latency samples
        return "-"
    return fmt.format(value * scale)
