"""`capsim dedicated`: the command body, registered in sim.cli with `app.command("dedicated")`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sim.experiments.plan_cli import _cell
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


def dedicated_command(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML")],
    account: Annotated[str, typer.Option(help="The account whose traffic is sized")],
    slo: Annotated[
        list[str],
        typer.Option(
            help="An SLO as in `capsim plan` (all the account's model ids, all tiers): "
            "ttft_p99_s<=1, queue_mean_s<=0.5, status_503_share<=0.01; repeatable"
        ),
    ],
    traffic: Annotated[
        str,
        typer.Option(
            help="Levels of the account's traffic for the cost curve, as multiples of the "
            "scenario's: LOW..HIGH (--steps levels, geometric) or v1,v2,...; 1 is always sized, "
            "and the break-even is searched up to the highest"
        ),
    ] = "0.25..4",
    steps: Annotated[int, typer.Option(min=2, help="Levels of LOW..HIGH")] = 5,
    max_replicas: Annotated[int, typer.Option(min=1, help="Most replicas per pool searched")] = 64,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Results folder (default results/<scenario name>-dedicated-<account>)"
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field of every run: dotted.path=value"),
    ] = None,
    workers: WorkersOption = None,
    scheduler: DaskOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table")] = False,
) -> None:
    """Fewest dedicated replicas serving one account's traffic alone within the SLOs, their
    monthly cost (GPU-hours at the scenario's prices, 730 h) against the account's serverless
    bill, and the traffic where the two cost the same. Writes dedicated.parquet,
    dedicated.json and plots/serverless_vs_dedicated.png (resumable)."""
    from sim.errors import InputError
    from sim.experiments.dedicated import run_dedicated
    from sim.experiments.plan import parse_over, parse_slo
    from sim.experiments.sweep import SweepFailed
    from sim.report.dedicated_plots import serverless_vs_dedicated
    from sim.report.style import save
    from sim.results.provenance import write_command_info
    from sim.results.store import folder_name
    from sim.scenario_loader import load_scenario

    sets = list(settings or [])
    slos = [parse_slo(text) for text in slo]
    try:
        _, levels = parse_over(f"traffic={traffic}", steps)
    except InputError:
        raise InputError(
            f"--traffic {traffic!r}: expected LOW..HIGH (LOW < HIGH) or v1,v2,...: multiples "
            "of the scenario's traffic"
        ) from None
    base = load_scenario(scenario_path, sets)
    target = out_dir or Path("results") / folder_name(f"{base.name}-dedicated-{account}")
    started = time.perf_counter()
    with runs_bar("dedicated", quiet, total_known=False) as bar:
        advance = RunCounter(bar)
        try:
            result = run_dedicated(
                scenario_path,
                account,
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
    (target / "plots").mkdir(exist_ok=True)
    break_even = result.info["break_even"]
    figure = serverless_vs_dedicated(
        result.table, break_even["traffic_multiplier"] if break_even else None
    )
    save(figure, target / "plots" / "serverless_vs_dedicated.png")
    if not quiet:
        print_table(result.table)
        out.print(verdict(result.info))
        err.print(
            f"{advance.count} runs in {time.perf_counter() - started:.1f} s; table: "
            f"{target / 'dedicated.parquet'}"
        )


_HEADERS = {
    "traffic_multiplier": "x traffic",
    "requests_per_s": "req/s",
    "gpus": "GPUs",
    "dedicated_usd_per_hour": "dedicated $/h",
    "dedicated_usd_per_month": "dedicated $/month",
    "serverless_usd_per_hour": "serverless $/h",
    "serverless_usd_per_month": "serverless $/month",
}


def print_table(table: pa.Table) -> None:
    view = Table(
        title="serverless vs dedicated (a month is 730 h; SLOs on the 95% bound over replications)",
        title_justify="left",
    )
    for name in table.column_names:
        header = _HEADERS.get(name, name.removeprefix("slo.").removeprefix("replicas."))
        title = f"{header} replicas" if name.startswith("replicas.") else header
        view.add_column(title, justify="right")
    for row in table.to_pylist():
        view.add_row(
            *(
                f"{v:,.0f}" if k.endswith("_per_month") and v is not None else _cell(v)
                for k, v in row.items()
            )
        )
    out.print(view)


def verdict(info: dict[str, Any]) -> str:
    """The answer in words: at the scenario's traffic, and the break-even."""
    now, serverless = info["at_scenario_traffic"], info["serverless"]
    lines = [f"account {info['account']}: serverless ${serverless['usd_per_month']:,.0f}/month"]
    if now["met"]:
        lines[0] += (
            f", dedicated ${now['dedicated_usd_per_month']:,.0f}/month ({_gpus(now['gpus'])}): "
            f"{now['cheaper']} is cheaper at the scenario's traffic"
        )
    else:
        lines[0] += ", dedicated: the SLOs are not met within --max-replicas"
    even = info["break_even"]
    if even is None:
        lines.append(
            f"no break-even up to x{info['searched_up_to_multiplier']:g} the scenario's traffic"
        )
    else:
        lines.append(
            f"break-even at x{even['traffic_multiplier']:.3g} the scenario's traffic "
            f"({even['requests_per_s']:.3g} requests/s served): "
            f"${even['dedicated_usd_per_month']:,.0f}/month, {_gpus(even['gpus'])}"
        )
    return "\n".join(lines)


def _gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"
