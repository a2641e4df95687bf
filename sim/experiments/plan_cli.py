"""`capsim plan`: the command body, registered in sim.cli with `app.command("plan")`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sim.experiments.sweep_cli import (
    DaskOption,
    RunCounter,
    WorkersOption,
    _cpus,
    err,
    exit_failed,
    out,
    runs_bar,
)

if TYPE_CHECKING:
    import pyarrow as pa


def plan_command(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML")],
    slo: Annotated[
        list[str],
        typer.Option(
            help="An SLO on a summary metric, all models, all tiers: ttft_p99_s<=2, "
            "tpot_p99_s<=0.08, queue_mean_s<=1, status_503_share<=0.01; repeatable"
        ),
    ],
    over: Annotated[
        str | None,
        typer.Option(
            help="Load levels: dotted.path=LOW..HIGH (--steps levels, geometric) or "
            "dotted.path=v1,v2,... (default: the scenario's own load)"
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=2, help="Levels of LOW..HIGH")] = 5,
    max_replicas: Annotated[int, typer.Option(min=1, help="Most replicas per pool searched")] = 64,
    reverse: Annotated[
        bool,
        typer.Option(
            "--reverse",
            help="The reverse question: the most load within --over's range that the "
            "scenario's fleet sustains (bisection, --steps steps)",
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Plan folder (default results/<scenario name>-plan)"),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field of every run: dotted.path=value"),
    ] = None,
    workers: WorkersOption = None,
    scheduler: DaskOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table")] = False,
) -> None:
    """Fewest replicas per pool meeting every SLO at each load level (upper 95% bound over
    replications), with GPUs, cost and margin; or with --reverse the most load a fleet
    sustains. Writes plan.parquet and the capacity and cost curves (resumable)."""
    from sim.errors import InputError
    from sim.experiments.plan import parse_over, parse_slo, run_capacity, run_plan
    from sim.experiments.sweep import SweepFailed
    from sim.report.plan_plots import capacity_curve, cost_curve, money_curve
    from sim.report.style import save
    from sim.results.provenance import write_command_info
    from sim.results.store import folder_name
    from sim.scenario_loader import load_scenario

    sets = list(settings or [])
    slos = [parse_slo(text) for text in slo]
    levels = parse_over(over, steps) if over is not None else None
    if reverse and levels is None:
        raise InputError("--reverse needs --over dotted.path=LOW..HIGH: the range searched")
    base = load_scenario(scenario_path, sets)
    target = out_dir or Path("results") / f"{folder_name(base.name)}-plan"
    started = time.perf_counter()
    with runs_bar("plan", quiet, total_known=False) as bar:
        advance = RunCounter(bar)
        try:
            if reverse:
                assert levels is not None
                table = run_capacity(
                    scenario_path,
                    slos,
                    target,
                    workers or _cpus(),
                    levels,
                    steps,
                    scheduler,
                    advance,
                    sets,
                )
            else:
                table = run_plan(
                    scenario_path,
                    slos,
                    target,
                    workers or _cpus(),
                    levels,
                    max_replicas,
                    scheduler,
                    advance,
                    sets,
                )
        except SweepFailed as failed:
            exit_failed(failed)
    write_command_info(target)
    if levels is not None and not reverse:
        load = levels[0].rsplit(".", 1)[-1]
        (target / "plots").mkdir(exist_ok=True)
        save(capacity_curve(table, load), target / "plots" / "capacity.png")
        save(cost_curve(table, load), target / "plots" / "cost.png")
        save(money_curve(table, load), target / "plots" / "money.png")
    if not quiet:
        print_table(table)
        err.print(
            f"{advance.count} runs in {time.perf_counter() - started:.1f} s; table: "
            f"{target / 'plan.parquet'}"
        )


def print_table(table: pa.Table) -> None:
    view = Table(
        title="plan (SLOs judged on the 95% bound over replications)", title_justify="left"
    )
    for name in table.column_names:
        view.add_column(name, justify="right")
    for row in table.to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    out.print(view)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
