"""`capsim compare`: the command body, registered in sim.cli with `app.command("compare")`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sim.experiments.sweep_cli import (
    DaskOption,
    WorkersOption,
    _cpus,
    err,
    exit_failed,
    out,
    runs_bar,
)

if TYPE_CHECKING:
    import pyarrow as pa

_SHOWN = (  # (metric suffix after "<model>.all.", header, scale, format)
    ("requests_per_s", "served/s", 1.0, "{:.3g}"),
    ("ttft_s.mean", "TTFT mean s", 1.0, "{:.3g}"),
    ("ttft_s.p99", "TTFT p99 s", 1.0, "{:.3g}"),
    ("tpot_s.p99", "TPOT p99 ms", 1000.0, "{:.3g}"),
    ("e2e_s.mean", "E2E mean s", 1.0, "{:.3g}"),
    ("queue_s.mean", "queue mean s", 1.0, "{:.3g}"),
    ("cache_hit_ratio", "cache hit %", 100.0, "{:.3g}"),
)


def compare_command(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML (with `variants:`)")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Comparison folder (default results/<scenario name>-compare)"),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field of every run: dotted.path=value (YAML value); repeatable",
        ),
    ] = None,
    workers: WorkersOption = None,
    scheduler: DaskOption = None,
    plots: Annotated[bool, typer.Option("--plots", help="Write each run's PNG plots")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table")] = False,
) -> None:
    """Run each variant x replication (resumable) on the same seeds; write compare.parquet
    (intervals and paired differences), compare_runs.parquet and side-by-side plots."""
    from sim.experiments.compare import run_compare, variants
    from sim.experiments.sweep import RunDone, SweepFailed
    from sim.report.compare_plots import compare_figures
    from sim.report.style import save
    from sim.results.provenance import write_command_info
    from sim.results.store import folder_name
    from sim.scenario_loader import load_scenario

    sets = list(settings or [])
    base = load_scenario(scenario_path, sets)
    target = out_dir or Path("results") / f"{folder_name(base.name)}-compare"
    total = len(variants(base)) * base.replications
    started = time.perf_counter()
    with runs_bar("compare", quiet) as bar:
        task = bar.add_task("", total=total)

        def advance(report: RunDone) -> None:
            bar.update(task, completed=report.done, description=report.name)

        try:
            runs, table = run_compare(
                scenario_path, target, workers or _cpus(), scheduler, plots, advance, sets
            )
        except SweepFailed as failed:
            exit_failed(failed)
    write_command_info(target)
    (target / "plots").mkdir(exist_ok=True)
    for name, fig in compare_figures(target, runs, table, base.warmup_s).items():
        save(fig, target / "plots" / f"{name}.png")
    if not quiet:
        print_table(table)
        err.print(
            f"{total} runs in {time.perf_counter() - started:.1f} s; "
            f"tables: {target / 'compare.parquet'}, {target / 'compare_runs.parquet'}"
        )


def print_table(table: pa.Table) -> None:
    """Per model and variant: mean [95% interval] over replications, and below each variant
    after the first its paired difference from the first."""
    rows = table.to_pylist()
    models = sorted(
        {
            r["metric"].removesuffix(".all.requests")
            for r in rows
            if r["metric"].endswith(".all.requests")
        }
    )
    cells = {(r["variant"], r["metric"]): r for r in rows}
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for model in models:
        view = Table(
            title=f"{model}: mean [95% interval] over replications; Δ = paired difference "
            f"from {names[0]}",
            title_justify="left",
        )
        view.add_column("variant")
        for _, header, _, _ in _SHOWN:
            view.add_column(header, justify="right")
        for name in names:
            found = [cells.get((name, f"{model}.all.{key}")) for key, *_ in _SHOWN]
            view.add_row(
                name,
                *(
                    _cell(r, "mean", "ci_low", "ci_high", scale, fmt)
                    for r, (_, _, scale, fmt) in zip(found, _SHOWN, strict=True)
                ),
            )
            if name != names[0]:
                view.add_row(
                    f"  Δ {name}",
                    *(
                        _cell(r, "diff_mean", "diff_ci_low", "diff_ci_high", scale, fmt)
                        for r, (_, _, scale, fmt) in zip(found, _SHOWN, strict=True)
                    ),
                )
        out.print(view)


def _cell(row: dict | None, mean: str, low: str, high: str, scale: float, fmt: str) -> str:
    if row is None or row[mean] is None or math.isnan(row[mean]):
        return "-"
    text = fmt.format(row[mean] * scale)
    if row[low] is None or math.isnan(row[low]):
        return text
    return f"{text} [{fmt.format(row[low] * scale)}, {fmt.format(row[high] * scale)}]"
