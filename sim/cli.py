"""The `capsim` command (also `python -m sim`)."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sim.errors import InputError
from sim.experiments.compare_cli import compare_command
from sim.experiments.dedicated_cli import dedicated_command
from sim.experiments.plan_cli import plan_command
from sim.experiments.sweep_cli import sweep_command
from sim.results.summary import tps_per_request_text
from sim.status import RETRYABLE, STATUS_OK

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="capsim: a discrete-event capacity simulator for pay-per-token LLM inference services.",
)
# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
# Rows of a per-account table: a fleet of 2,000 accounts made tables of 6,000 rows (under a MB,
# and seconds to lay out) that nobody reads on a terminal; summary.json holds every row.
MAX_ACCOUNT_ROWS = 20


def main() -> None:
    interrupt_on_sigterm()
    try:
        app()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)  # unwrapped: scripts and editors parse it
        sys.exit(error.exit_code)


def interrupt_on_sigterm() -> None:
    """SIGTERM (a kill, a job scheduler's stop) ends a command as Ctrl-C does: temporary
    folders are removed and sweep workers stopped, instead of dying mid-write."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@app.command()
def run(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Results folder (default results/<scenario name>)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field: dotted.path=value (YAML value), e.g. "
            "models.llama-8b.pools.standard.replicas=8; repeatable",
        ),
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table")] = False,
) -> None:
    """Run a scenario and write requests.parquet, timeseries.parquet, cache_hits.parquet,
    summary.json, plots."""
    from sim.experiments.runner import run_scenario
    from sim.gcpause import collector_paused
    from sim.results.provenance import Origin, command_line
    from sim.results.store import folder_name
    from sim.scenario_loader import load_scenario

    seed_override = [] if seed is None else [f"seed={seed}"]  # validated like the file's seed
    with collector_paused():
        scenario = load_scenario(scenario_path, [*(overrides or []), *seed_override])
    target = out_dir or Path("results") / folder_name(scenario.name)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} / {task.total:,.0f} simulated s"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task(scenario.name, total=scenario.duration_s)
        report = run_scenario(
            scenario,
            target,
            plots=not no_plots,
            progress=lambda now, total: progress.update(task, completed=now),
            origin=Origin(str(scenario_path), (*(overrides or []), *seed_override), command_line()),
        )
    for traffic, lines in report.summary["trace_lines_skipped"].items():
        if lines:
            err.print(f"[yellow]traffic {traffic}: {lines:,} malformed trace lines skipped")
    for warning in report.summary["warnings"]:
        err.print(f"[yellow]warning: {warning}")
    if not quiet:
        _print_summary(report.summary)
        err.print(
            f"{report.requests:,} requests, {report.events:,} events simulated in "
            f"{report.simulate_s:.2f} s ({report.requests / max(report.simulate_s, 1e-9):,.0f} "
            f"requests/s, peak memory {report.simulate_peak_mib:,.0f} MiB); results in "
            f"{report.out_dir} ({report.total_s:.2f} s in all)"
        )


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"after warm-up ({summary['warmup_s']:g} s)", title_justify="left")
    for column in (
        "model",
        "tier",
        "requests",
        "status",
        "arrived/s",
        "finished/s",
        "TTFT p50/p99 s",
        "TPOT p50/p99 ms",
        "E2E p50/p99 s",
        "queue p99 s",
        "cache hit",
        "revenue $",
    ):
        table.add_column(
            column, justify="left" if column in ("model", "tier", "status") else "right"
        )
    # arrived/s: served requests that arrived in the window (the load offered and eventually
    # served); finished/s: requests served within it (what the pool delivered). See metrics.md.
    for model, data in summary["models"].items():
        for tier, group in data["tiers"].items():
            table.add_row(
                model,
                tier,
                f"{group['requests']:,}",
                " ".join(f"{code}:{n:,}" for code, n in group["by_status"].items()),
                f"{group['throughput']['requests_per_s']:.2f}",
                f"{group['throughput']['completed_requests_per_s']:.2f}",
                _pair(group["ttft_s"], 1),
                _pair(group["tpot_s"], 1000),
                _pair(group["e2e_s"], 1),
                f"{group['queue_s']['p99']:.3f}" if group["queue_s"]["count"] else "-",
                f"{group['cache_hit_ratio']:.1%}" if group["prompt_tokens"] else "-",
                f"{group['revenue_usd']:,.2f}",
            )
    if not summary["requests_measured"]:
        table.caption = (
            f"nothing measured: no request arrived between warm-up and the end of arrivals "
            f"({summary['warmup_s']:g} to {summary['duration_s']:g} s)"
        )
    out.print(table)
    pools = Table(title="pools", title_justify="left")
    columns = ("model", "pool", "replicas", "replica-h", "utilisation", "KV use", "running")
    for column in (*columns, "waiting", "gen tok/s/req p50/mean"):
        pools.add_column(column, justify="left" if column in ("model", "pool") else "right")
    for pool in summary["pools"]:
        fewest, most = pool["replicas_serving_min"], pool["replicas_serving_max"]
        replicas = str(most) if fewest == most else f"{fewest}-{most} serving"
        pools.add_row(
            pool["model"],
            pool["pool"],
            replicas,
            f"{pool['replica_hours']:.2f}",
            f"{pool['utilisation']:.1%}",
            f"{pool['kv_use_mean']:.1%}",
            f"{pool['running_mean']:.1f}",
            f"{pool['waiting_mean']:.1f}",
            tps_per_request_text(pool),
        )
    out.print(pools)
    _print_economics(summary.get("economics"))
    revenue = summary["revenue"]
    if revenue["by_account"]:
        bill = Table(
            title=f"revenue, whole run: ${revenue['total_usd']:,.2f}", title_justify="left"
        )
        for column in ("account", "model", "tier", "served", "revenue $"):
            bill.add_column(
                column, justify="right" if column in ("served", "revenue $") else "left"
            )
        rows, bill_note = _largest(
            revenue["by_account"],
            lambda row: row["revenue_usd"],
            "account, model and tier rows by revenue",
            "revenue.by_account",
        )
        for row in rows:
            bill.add_row(
                row["account"],
                row["model"],
                row["tier"],
                f"{row['served']:,}",
                f"{row['revenue_usd']:,.2f}",
            )
        out.print(bill)
        _print_note(bill_note)
    _print_accounts(summary)
    _print_jobs(summary.get("jobs"))


def _print_jobs(jobs: dict[str, Any] | None) -> None:
    """Per batch job: its state, when it started and ended, its rows and its bill."""
    if not jobs or not jobs["jobs"]:
        return
    table = Table(title="batch jobs (jobs.parquet)", title_justify="left")
    columns = ("job", "account", "model", "status", "submitted s", "started s", "ended s")
    for column in (*columns, "rows", "done", "expired", "failed", "open", "cost $"):
        table.add_column(column, justify="left" if column in columns[:4] else "right")

    def time(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for job in jobs["jobs"]:
        ended = job["finished_s"] if job["finished_s"] is not None else job["expired_s"]
        table.add_row(
            job["job"],
            job["account"],
            job["model"],
            job["status"],
            time(job["submitted_s"]),
            time(job["started_s"]),
            time(ended),
            f"{job['rows']:,}",
            f"{job['rows_done']:,}",
            f"{job['rows_expired']:,}",
            f"{job['rows_failed']:,}",
            f"{job['rows_open']:,}",
            f"{job['cost_usd']:,.2f}",
        )
    out.print(table)


def _print_accounts(summary: dict[str, Any]) -> None:
    """Per account, model and tier: attempts by status and what became of the logical
    requests (served, gave up after the last retry, refused without retry, still open)."""
    table = Table(title="accounts (logical requests after warm-up)", title_justify="left")
    for column in (
        "account",
        "model",
        "tier",
        "attempts",
        "attempt outcomes",
        "logical",
        "served",
        "gave up",
        "refused",
        "unfinished",
    ):
        table.add_column(
            column, justify="left" if column in ("account", "model", "tier") else "right"
        )
    groups = [
        (account, model, tier, group)
        for account, models in summary["accounts"].items()
        for model, tiers in models.items()
        for tier, group in tiers.items()
    ]
    rows, accounts_note = _largest(
        groups,
        lambda row: row[3]["attempts"],
        "account, model and tier rows by attempts",
        "accounts",
    )
    for account, model, tier, group in rows:
        table.add_row(
            account,
            model,
            tier,
            f"{group['attempts']:,}",
            " ".join(f"{c}:{n:,}" for c, n in group["attempts_by_status"].items()),
            f"{group['logical_requests']:,}",
            f"{group['served']:,}",
            f"{group['gave_up']:,}",
            _refusals(group),
            f"{group['unfinished']:,}",
        )
    out.print(table)
    _print_note(accounts_note)
    if summary.get("sessions"):  # added by the runner, beside trace_lines_skipped
        sessions = Table(title="sessions (whole run)", title_justify="left")
        for column in ("traffic", "started", "completed", "abandoned"):
            sessions.add_column(column, justify="left" if column == "traffic" else "right")
        rows, sessions_note = _largest(
            list(summary["sessions"].items()),
            lambda row: row[1]["started"],
            "traffic sources by sessions started",
            "sessions",
        )
        for traffic, counts in rows:
            sessions.add_row(
                traffic, *(f"{counts[k]:,}" for k in ("started", "completed", "abandoned"))
            )
        out.print(sessions)
        _print_note(sessions_note)


def _largest(
    rows: list[Any], size: Callable[[Any], float], what: str, field: str
) -> tuple[list[Any], str | None]:
    """All `rows` in their order, or the MAX_ACCOUNT_ROWS largest by `size` (largest first) and
    a note saying so."""
    if len(rows) <= MAX_ACCOUNT_ROWS:
        return rows, None
    largest = sorted(rows, key=size, reverse=True)[:MAX_ACCOUNT_ROWS]  # stable: ties keep order
    return (
        largest,
        f"the {MAX_ACCOUNT_ROWS} largest of {len(rows):,} {what}; all in summary.json's {field}",
    )


def _print_note(note: str | None) -> None:
    if note is not None:
        out.print(note, style="dim")


def _refusals(group: dict[str, Any]) -> str:
    """Logical requests refused without retry, by status (402 budget, 400, 404)."""
    final = [
        f"{code}:{n:,}"
        for code, n in group["final_status"].items()
        if int(code) != STATUS_OK and int(code) not in RETRYABLE
    ]
    return " ".join(final) or "0"


def _print_economics(economics: dict[str, Any] | None) -> None:
    """Cost, revenue and margin per pool and for the fleet, over the measured window."""
    if not economics or not economics["pools"]:
        return
    table = Table(title="economics, measured window", title_justify="left")
    columns = ("model", "pool", "GPU-h", "cost $", "revenue $", "margin $", "cost $/Mtok out")
    for column in (*columns, "revenue $/Mtok out"):
        table.add_column(column, justify="left" if column in ("model", "pool") else "right")
    rows = [(p["model"], p["pool"], p) for p in economics["pools"]]
    for model, pool, row in [*rows, ("fleet", "", economics["fleet"])]:
        out_cost, out_revenue = (
            row[k]["output"] for k in ("cost_usd_per_mtok", "revenue_usd_per_mtok")
        )
        table.add_row(
            model,
            pool,
            f"{row['gpu_hours']:.2f}",
            f"{row['cost_usd']:,.2f}",
            f"{row['revenue_usd']:,.2f}",
            f"{row['margin_usd']:,.2f}",
            "-" if out_cost is None else f"{out_cost:,.2f}",
            "-" if out_revenue is None else f"{out_revenue:,.2f}",
        )
    out.print(table)


def _pair(stats: dict[str, Any], scale: float) -> str:
    if not stats.get("count"):
        return "-"
    return f"{stats['p50'] * scale:.3g} / {stats['p99'] * scale:.3g}"


@app.command()
def validate(
    scenario_path: Annotated[list[Path], typer.Argument(help="Scenario YAML files")],
) -> None:
    """Check scenarios: exit 0 if all are valid, else print every error and exit 2."""
    from sim.scenario_loader import load_scenario
    from sim.workload.traces import replayed_trace

    failed = False
    for path in scenario_path:
        try:
            scenario = load_scenario(path)
            for traffic in scenario.traffic:  # read as `run` reads them: the same errors
                if traffic.trace is not None:
                    replayed_trace(traffic.trace, scenario.duration_s, traffic.max_requests)
            out.print(f"{path}: ok")
        except InputError as error:
            print(error, file=sys.stderr)
            failed = True
    if failed:
        raise typer.Exit(2)


app.command("sweep")(sweep_command)
app.command("compare")(compare_command)
app.command("plan")(plan_command)
app.command("dedicated")(dedicated_command)


@app.command()
def report(
    results: Annotated[
        list[Path], typer.Argument(help="Results folders: runs, sweeps, compares or plans")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="The HTML file (default: report.html in the first folder)"),
    ] = None,
) -> None:
    """One self-contained HTML file: the question, command, seeds, tables, every plot and the
    scenario of each results folder; it opens offline."""
    from sim.report.html import write_report

    target = write_report(results, out_file or results[0] / "report.html")
    err.print(f"report: {target}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from sim.scenario import Scenario

    print(json.dumps(Scenario.model_json_schema(by_alias=True), indent=2))


@app.command()
def perf(
    gpu: Annotated[str, typer.Option(help="GPU type from the catalog (a100, h100, h200, b200)")],
    model: Annotated[str, typer.Option(help="Architecture from the catalog, e.g. llama-3.1-8b")],
    tp: Annotated[int, typer.Option(min=1, help="GPUs per replica (tensor parallel)")] = 1,
    context: Annotated[
        int, typer.Option(min=1, help="Context per sequence for the max-batch figure, tokens")
    ] = 2048,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="PNG of generated tokens/s against batch size "
            "(default results/perf/MODEL-GPU-tpN.png; none with --json unless given)"
        ),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Skip the plot")] = False,
) -> None:
    """What the performance model predicts: prefill and decode times, KV capacity, max batch."""
    from sim.perf.table import format_perf_table, max_batch, perf_report, plot_perf

    if plot is not None and not no_plot:
        _check_png_path(plot)
    report = perf_report(gpu, model, tp, context)
    title = f"{model} on {tp} x {gpu}"
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(format_perf_table(report, title=title))
        print(f"max batch at {context:,} tokens of context each: {max_batch(report, context):,}")
    if plot is None and not as_json:
        plot = Path("results") / "perf" / f"{model}-{gpu}-tp{tp}.png"
    if plot is not None and not no_plot:
        from sim.report.style import save

        plot.parent.mkdir(parents=True, exist_ok=True)
        save(plot_perf(report, title=title), plot)
        if not as_json:
            print(f"plot: {plot}")


def _check_png_path(plot: Path) -> None:
    """A folder or another extension would have matplotlib write `<name>.png` beside the path
    printed, or fail with a traceback."""
    if plot.is_dir():
        raise InputError(f"--plot {plot}: is a folder; give a file name ending in .png")
    if plot.suffix.lower() != ".png":
        raise InputError(f"--plot {plot}: the plot is a PNG; give a file name ending in .png")


@app.command("trace-stats")
def trace_stats(
    path: Annotated[Path, typer.Argument(help="Trace file (.jsonl Mooncake, .csv Azure or plain)")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="mooncake, azure or csv (default: guessed)")
    ] = None,
    block_size: Annotated[
        int | None, typer.Option(min=1, help="KV block size for the cache figure, tokens")
    ] = None,
    on_bad_line: Annotated[
        str,
        typer.Option(
            "--on-bad-line", help="error: stop at a malformed line; skip: skip and count them"
        ),
    ] = "error",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
) -> None:
    """Request count, span, rate, length percentiles, burstiness, unique blocks, and the hit
    ratio an infinite single prefix cache would reach."""
    from sim.workload.trace_stats import format_trace_stats, trace_stats_command

    if fmt is not None and fmt not in ("mooncake", "azure", "csv"):
        raise InputError(f"--format {fmt!r}: allowed: mooncake, azure, csv")
    stats = trace_stats_command(path, fmt, block_size, on_bad_line)
    print(json.dumps(stats, indent=2) if as_json else format_trace_stats(stats))
