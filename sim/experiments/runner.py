"""One run from a validated scenario to a results folder: what `capsim run` and sweeps share."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sim.engine import ProgressCallback, simulate
from sim.gcpause import collector_paused
from sim.results.bill import COLUMNS as bill_columns
from sim.results.bill import bill
from sim.results.cache_hits import COLUMNS as cache_hits_columns
from sim.results.cache_hits import cache_hits_over_time
from sim.results.economics import COLUMNS as economics_columns
from sim.results.economics import economics, usd_per_replica_hour
from sim.results.jobs import jobs_summary
from sim.results.provenance import RUN_INFO, Origin, run_info, write_json
from sim.results.store import RunFolder, write_run
from sim.results.summary import COLUMNS as summary_columns
from sim.results.summary import summarize
from sim.scenario import Scenario

# The records' columns the analyses read: read once for all of them, as they share most.
ANALYSED_COLUMNS = tuple(
    dict.fromkeys([*summary_columns, *economics_columns, *cache_hits_columns, *bill_columns])
)


@dataclass(frozen=True)
class RunReport:
    out_dir: Path
    summary: dict[str, Any]
    requests: int
    events: int
    simulate_s: float  # wall seconds spent simulating
    simulate_peak_mib: float  # the process's peak memory (RSS) when the simulation ended
    total_s: float  # wall seconds including summary, files and plots


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    plots: bool = True,
    progress: ProgressCallback | None = None,
    origin: Origin | None = None,
) -> RunReport:
    """Simulate `scenario` and write its folder; `origin` (the file, overrides and command it
    came from) goes into run.json for the report."""
    folder = RunFolder(out_dir)  # before the simulation: an unwritable target is found now
    try:
        with collector_paused():
            return _run(scenario, folder, plots, progress, origin, out_dir)
    except BaseException:
        folder.discard()
        raise


def _run(
    scenario: Scenario,
    folder: RunFolder,
    plots: bool,
    progress: ProgressCallback | None,
    origin: Origin | None,
    out_dir: Path,
) -> RunReport:
    started = time.perf_counter()
    result = simulate(scenario, progress, folder.tmp / "requests.parquet")
    simulate_s = time.perf_counter() - started
    simulate_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # The analyses read only the columns they need from the records written during the run.
    records = result.records
    analysed = records.read(ANALYSED_COLUMNS)
    summary = summarize(
        analysed.select(summary_columns),
        result.timeseries,
        scenario.warmup_s,
        scenario.duration_s,
        result.arrivals_end_s,
    )
    summary["trace_lines_skipped"] = result.trace_lines_skipped
    summary["sessions"] = result.sessions
    summary["warnings"] = result.warnings
    summary["economics"] = economics(scenario, analysed.select(economics_columns), summary)
    summary["jobs"] = jobs_summary(result.jobs)

    cache_hits = cache_hits_over_time(analysed.select(cache_hits_columns), result.timeseries)

    def write_extra(folder: Path) -> None:
        write_json(folder / RUN_INFO, run_info(scenario, origin, out_dir))
        pq.write_table(result.limits, folder / "limits.parquet")
        pq.write_table(bill(analysed.select(bill_columns)), folder / "bill.parquet")
        if scenario.batch_jobs:
            pq.write_table(result.jobs, folder / "jobs.parquet")
        (folder / "economics.json").write_text(
            json.dumps(summary["economics"], indent=2, allow_nan=False) + "\n"
        )
        if plots:
            from sim.report.economics_plots import COLUMNS as economics_plot_columns
            from sim.report.economics_plots import economics_figures
            from sim.report.gateway_plots import COLUMNS as gateway_plot_columns
            from sim.report.gateway_plots import gateway_figures
            from sim.report.plots import COLUMNS as plot_columns
            from sim.report.plots import write_plots as draw
            from sim.report.style import save

            draw(
                records.read(plot_columns),
                result.timeseries,
                scenario.warmup_s,
                folder / "plots",
                _session_hits_by_model(scenario, cache_hits),
            )
            figures = gateway_figures(
                records.read(gateway_plot_columns), result.limits
            ) | economics_figures(
                records.read(economics_plot_columns),
                result.timeseries,
                usd_per_replica_hour(scenario),
                summary["economics"],
                scenario.warmup_s,
            )
            for name, fig in figures.items():
                save(fig, folder / "plots" / f"{name}.png")

    written = write_run(folder, scenario, None, result.timeseries, cache_hits, summary, write_extra)
    return RunReport(
        written,
        summary,
        records.rows,
        result.events,
        simulate_s,
        simulate_peak_mib,
        time.perf_counter() - started,
    )


def _session_hits_by_model(scenario: Scenario, cache_hits: pa.Table) -> dict[str, pa.Table]:
    """cache_hits rows of each model that serves session traffic, labelled with its routing."""
    models = sorted({t.model for t in scenario.traffic if t.sessions is not None})
    return {
        f"{model} ({scenario.models[model].routing.policy})": cache_hits.filter(
            pc.equal(cache_hits["model"], model)
        )
        for model in models
    }
