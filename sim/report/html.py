"""`capsim report`: one self-contained HTML file for results folders (runs, sweeps, compares,
plans):
the question, the command, version and seeds, key tables, every plot as an inline PNG
and the scenario. It references no other file and no URL, so it opens offline and travels as
one attachment.

A folder's kind is found by the file that marks it (FOLDER_KINDS, first match wins); a new
kind of results is one renderer and one line there.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim import __version__
from sim.errors import InputError
from sim.report.dedicated_plots import serverless_vs_dedicated
from sim.report.gateway_plots import COLUMNS as GATEWAY_COLUMNS
from sim.report.gateway_plots import gateway_figures
from sim.report.plan_plots import capacity_curve, cost_curve, money_curve
from sim.report.plots import COLUMNS as PLOT_COLUMNS
from sim.report.plots import run_figures
from sim.report.style import ci95, png_base64
from sim.report.sweep_plots import grid_columns, key_metrics, sweep_metric
from sim.results.provenance import COMMAND_INFO, RUN_INFO
from sim.results.summary import tps_per_request_text

Table = tuple[str, list[str], list[list[str]]]  # caption, header, rows of cells


@dataclass
class Section:
    """What the report shows of one results folder."""

    folder: Path
    kind: str
    question: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)  # (what, value): command, seeds
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, base64 PNG)
    scenario_yaml: str = ""
    raw: list[tuple[str, str]] = field(default_factory=list)  # (file name, text), collapsed


# --- runs ---------------------------------------------------------------------------------------


def render_run(folder: Path) -> Section:
    section = Section(folder, "run")
    info = _json(folder / RUN_INFO)
    summary = _json(folder / "summary.json")
    section.question = info.get("question", "")
    section.facts = _run_facts(info)
    section.tables = [_latency_table(summary), _pools_table(summary), *_revenue_table(summary)]
    section.figures = _folder_pngs(folder / "plots") or _drawn_run_figures(folder)
    section.scenario_yaml = _text(folder / "scenario.resolved.yaml")
    section.raw = [("summary.json", json.dumps(summary, indent=2))]
    return section


def _run_facts(info: dict[str, Any]) -> list[tuple[str, str]]:
    if not info:
        return [("run.json", "not in this folder (made before capsim recorded it)")]
    return [
        ("command", info.get("command", "")),
        ("seed", str(info.get("seed", ""))),
        ("capsim version", info.get("capsim_version", "")),
        ("scenario file", info.get("scenario_file", "")),
    ]


def _latency_table(summary: dict[str, Any]) -> Table:
    header = [
        "model",
        "tier",
        "requests",
        "by status",
        "served/s",
        "TTFT p50 s",
        "TTFT p99 s",
        "TPOT p50 ms",
        "TPOT p99 ms",
        "E2E p99 s",
        "queue p99 s",
        "TTFT mean s (approx. 95% CI)",  # batch means in one run: docs/metrics.md
        "cache hit",
    ]
    rows = []
    for model, data in summary["models"].items():
        for tier, group in {"all": data["all"], **data["tiers"]}.items():
            rows.append(
                [
                    model,
                    tier,
                    f"{group['requests']:,}",
                    " ".join(f"{code}: {n:,}" for code, n in group["by_status"].items()),
                    f"{group['throughput']['requests_per_s']:.2f}",
                    _stat(group["ttft_s"], "p50"),
                    _stat(group["ttft_s"], "p99"),
                    _stat(group["tpot_s"], "p50", 1000),
                    _stat(group["tpot_s"], "p99", 1000),
                    _stat(group["e2e_s"], "p99"),
                    _stat(group["queue_s"], "p99"),
                    _mean_ci(group["ttft_s"]),
                    f"{group['cache_hit_ratio']:.1%}" if group["prompt_tokens"] else "-",
                ]
            )
    window = f"after warm-up ({summary['warmup_s']:g} s), per model and tier"
    return (f"Latency and throughput {window}", header, rows)


def _stat(stats: dict[str, Any], key: str, scale: float = 1.0) -> str:
    value = stats.get(key)
    return "-" if value is None else f"{value * scale:.3g}"


def _mean_ci(stats: dict[str, Any]) -> str:
    if not stats.get("count"):
        return "-"
    low, high = stats.get("mean_ci95", (None, None))
    interval = f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else ""
    return f"{stats['mean']:.3g}{interval}"


def _pools_table(summary: dict[str, Any]) -> Table:
    header = ["model", "pool", "replicas", "utilisation", "KV use", "running", "waiting"]
    header.append("generated tokens/s per request, p50 / mean")
    rows = [
        [
            pool["model"],
            pool["pool"],
            str(pool["replicas"]),
            f"{pool['utilisation']:.1%}",
            f"{pool['kv_use_mean']:.1%}",
            f"{pool['running_mean']:.1f}",
            f"{pool['waiting_mean']:.1f}",
            tps_per_request_text(pool),
        ]
        for pool in summary["pools"]
    ]
    return ("Pools (time averages after warm-up)", header, rows)


def _revenue_table(summary: dict[str, Any]) -> list[Table]:
    """What the run billed per account, model and tier (warm-up included), when it has prices."""
    revenue = summary.get("revenue")
    if not revenue or not revenue["by_account"]:
        return []
    rows = [
        [r["account"], r["model"], r["tier"], f"{r['served']:,}", f"{r['revenue_usd']:,.4f}"]
        for r in revenue["by_account"]
    ]
    rows.append(["all", "", "", "", f"{revenue['total_usd']:,.4f}"])
    header = ["account", "model", "tier", "served", "revenue USD"]
    return [("Revenue (every served attempt, warm-up included)", header, rows)]


def _drawn_run_figures(folder: Path) -> list[tuple[str, str]]:
    """A run written with --no-plots: its standard plots, drawn from its tables."""
    warmup_s = float(_json(folder / "summary.json")["warmup_s"])
    columns = list(dict.fromkeys([*PLOT_COLUMNS, *GATEWAY_COLUMNS]))
    requests = pq.read_table(folder / "requests.parquet", columns=columns)
    timeseries = pq.read_table(folder / "timeseries.parquet")
    figures = run_figures(requests, timeseries, warmup_s)
    if (folder / "limits.parquet").is_file():
        figures |= gateway_figures(requests, pq.read_table(folder / "limits.parquet"))
    return [(name.replace("_", " "), png_base64(fig)) for name, fig in figures.items()]


# --- sweeps -------------------------------------------------------------------------------------


def render_sweep(folder: Path) -> Section:
    section = Section(folder, "sweep")
    table = pq.read_table(folder / "sweep.parquet")
    _experiment_provenance(section, folder, table)
    grid = grid_columns(table)
    metrics = key_metrics(table)
    section.tables = [_sweep_means(table, grid, metrics)]
    section.figures = [
        (f"{metric} against {x}", png_base64(sweep_metric(table, metric, x)))
        for metric in metrics
        for x in grid[:1]
    ]
    section.raw = [("sweep.parquet (every run)", _plain_table(table))]
    return section


def _sweep_means(table: pa.Table, grid: list[str], metrics: list[str]) -> Table:
    """One row per grid point: each metric's mean over seeds and its 95% interval."""
    data = table.to_pydict()
    points = list(dict.fromkeys(zip(*(data[name] for name in grid), strict=True))) or [()]
    rows = []
    for point in points:
        which = [
            i
            for i in range(table.num_rows)
            if all(data[name][i] == value for name, value in zip(grid, point, strict=True))
        ]
        cells = [str(value) for value in point] + [str(len(which))]
        for metric in metrics:
            values = np.array([data[metric][i] for i in which], dtype=float)
            low, high = ci95(values)
            mean = np.nanmean(values) if np.isfinite(values).any() else np.nan
            interval = f" [{_number(low)}, {_number(high)}]" if np.isfinite(low) else ""
            cells.append(_number(mean) + interval)
        rows.append(cells)
    caption = "Mean over seeds per grid point, with the 95% interval over seeds (2+ seeds)"
    return (caption, [*grid, "seeds", *metrics], rows)


# --- compares ----------------------------------------------------------------------------------


def render_compare(folder: Path) -> Section:
    """compare.parquet (per variant and metric: mean and interval over replications, paired
    difference from the first variant) as one row per metric, and the plots compare drew."""
    section = Section(folder, "compare")
    runs = pq.read_table(folder / "compare_runs.parquet")
    _experiment_provenance(section, folder, runs)
    rows = pq.read_table(folder / "compare.parquet").to_pylist()
    names = list(dict.fromkeys(row["variant"] for row in rows))
    cells = {(row["variant"], row["metric"]): row for row in rows}
    header = ["metric", *names, *(f"{name} - {names[0]}" for name in names[1:])]
    table_rows = []
    for metric in dict.fromkeys(row["metric"] for row in rows):
        found = [cells.get((name, metric)) for name in names]
        means = [_interval(r, "mean", "ci_low", "ci_high") for r in found]
        diffs = [_interval(r, "diff_mean", "diff_ci_low", "diff_ci_high") for r in found[1:]]
        table_rows.append([metric, *means, *diffs])
    replications = max((row["replications"] for row in rows), default=0)
    caption = (
        f"Mean [95% interval] over {replications} replications per variant, and the paired "
        f"difference from {names[0] if names else '-'} [its 95% interval]"
    )
    section.tables = [(caption, header, table_rows)]
    section.figures = _folder_pngs(folder / "plots")
    section.raw = [("compare_runs.parquet (every run)", _plain_table(runs))]
    return section


def _interval(row: dict[str, Any] | None, mean: str, low: str, high: str) -> str:
    if row is None:
        return "-"
    bounds = f" [{_number(row[low])}, {_number(row[high])}]" if np.isfinite(row[low]) else ""
    return _number(row[mean]) + bounds


# --- plans -------------------------------------------------------------------------------------


def render_plan(folder: Path) -> Section:
    """plan.parquet as it is (one row per load level, or the reverse question's one row), and
    the capacity, cost and money curves drawn from it when it plans over load levels."""
    section = Section(folder, "plan")
    table = pq.read_table(folder / "plan.parquet")
    _experiment_provenance(section, folder, table)
    reverse = "sustained" in table.column_names
    what = (
        "The most load the scenario's fleet sustains within every SLO"
        if reverse
        else "Fewest replicas per pool meeting every SLO, with GPUs, cost and margin"
    )
    caption = f"{what} (SLOs judged on the unfavourable 95% bound over replications)"
    section.tables = [(caption, table.column_names, _cells(table))]
    load = table.column_names[: table.column_names.index("met")]
    if load and not reverse:
        section.figures = [
            ("capacity: replicas against load", png_base64(capacity_curve(table, load[0]))),
            ("cost per million tokens against load", png_base64(cost_curve(table, load[0]))),
            (
                "cost, revenue and margin per hour against load",
                png_base64(money_curve(table, load[0])),
            ),
        ]
    return section


def render_dedicated(folder: Path) -> Section:
    """dedicated.parquet as it is, dedicated.json (collapsed) and the monthly cost curve."""
    section = Section(folder, "dedicated")
    table = pq.read_table(folder / "dedicated.parquet")
    _experiment_provenance(section, folder, table)
    info = _json(folder / "dedicated.json")
    even = info.get("break_even")
    caption = (
        f"Account {info.get('account', '?')}: fewest dedicated replicas meeting "
        f"{', '.join(info.get('slos', []))} at multiples of its traffic, and the monthly cost "
        "(730 h) dedicated and serverless"
    )
    section.tables = [(caption, table.column_names, _cells(table))]
    figure = serverless_vs_dedicated(table, even["traffic_multiplier"] if even else None)
    section.figures = [("monthly cost against traffic", png_base64(figure))]
    section.raw = [("dedicated.json", (folder / "dedicated.json").read_text())]
    return section


def _experiment_provenance(section: Section, folder: Path, table: pa.Table) -> None:
    """Command and version from command.json; question and scenario from its first run; the
    seeds from the table or, when it has none (a plan), from the runs."""
    info = _json(folder / COMMAND_INFO)
    runs = sorted(p.parent for p in folder.rglob(RUN_INFO))
    first = _json(runs[0] / RUN_INFO) if runs else {}
    section.question = first.get("question", "")
    if "seed" in table.column_names:
        seeds = sorted(set(table["seed"].to_pylist()))
    else:
        seeds = sorted({_json(run / RUN_INFO).get("seed") for run in runs} - {None})
    section.facts = [
        ("command", info.get("command", "not recorded (no command.json)")),
        ("capsim version", info.get("capsim_version", first.get("capsim_version", ""))),
        ("runs", f"{len(runs) or table.num_rows:,}"),  # a plan's table has a row per level
        ("seeds", ", ".join(str(s) for s in seeds) or "-"),
    ]
    if runs:
        shown = runs[0].relative_to(folder)
        section.facts.append(("scenario shown", f"the resolved scenario of the run {shown}"))
        section.scenario_yaml = _text(runs[0] / "scenario.resolved.yaml")


# --- the page -----------------------------------------------------------------------------------

FOLDER_KINDS: list[tuple[str, Callable[[Path], Section]]] = [  # (marker file, renderer)
    ("compare.parquet", render_compare),
    ("plan.parquet", render_plan),
    ("dedicated.parquet", render_dedicated),
    ("sweep.parquet", render_sweep),
    ("summary.json", render_run),
]


def render_folder(folder: Path) -> Section:
    if not folder.is_dir():
        raise InputError(
            f"{folder}: not a folder; give a results folder of capsim run, sweep, compare or plan"
        )
    for marker, render in FOLDER_KINDS:
        if (folder / marker).is_file():
            return render(folder)
    markers = ", ".join(marker for marker, _ in FOLDER_KINDS)
    raise InputError(f"{folder}: not a capsim results folder (it holds none of {markers})")


def write_report(folders: list[Path], out: Path) -> Path:
    """Render every folder into one HTML page at `out` (temporary name, then renamed)."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out}: the report is one HTML file; give a name ending in .html")
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give a file name ending in .html")
    sections = [render_folder(folder) for folder in folders]
    page = _page(sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 2px solid #1f77b4; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
th { background: #eef3f8; } td:first-child, th:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; padding: .3em 0; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.question { white-space: pre-wrap; background: #fffbe6; border-left: 4px solid #e0b000; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: bold; } dd { margin: 0; font-family: monospace; }
"""


def _page(sections: list[Section]) -> str:
    esc = html.escape
    title = "capsim report: " + ", ".join(s.folder.name for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>Made by capsim {esc(__version__)}. One file: every plot is embedded.</p>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{esc(section.folder.name)} ({esc(section.kind)})</h2>")
        if section.question:
            parts.append("<h3>The question</h3>")
            parts.append(f'<pre class="question">{esc(section.question)}</pre>')
        parts.append("<dl>")
        for what, value in section.facts:
            parts.append(f"<dt>{esc(what)}</dt><dd>{esc(value)}</dd>")
        parts.append("</dl>")
        for caption, header, rows in section.tables:
            parts.append(f"<table><caption>{esc(caption)}</caption><tr>")
            parts.extend(f"<th>{esc(h)}</th>" for h in header)
            parts.append("</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        for caption, png in section.figures:
            parts.append(
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{png}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        if section.scenario_yaml:
            parts.append("<details><summary>The scenario (every default filled in)</summary>")
            parts.append(f"<pre>{esc(section.scenario_yaml)}</pre></details>")
        for name, text in section.raw:
            parts.append(f"<details><summary>{esc(name)}</summary><pre>{esc(text)}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- helpers ------------------------------------------------------------------------------------


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _folder_pngs(folder: Path) -> list[tuple[str, str]]:
    if not folder.is_dir():
        return []
    return [
        (png.stem.replace("_", " "), base64.b64encode(png.read_bytes()).decode("ascii"))
        for png in sorted(folder.glob("*.png"))
    ]


def _number(value: Any) -> str:
    if value is None:  # a plan's load level that no fleet within --max-replicas met
        return "-"
    if isinstance(value, float | np.floating):
        return "-" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _cells(table: pa.Table) -> list[list[str]]:
    data = table.to_pydict()
    return [[_number(data[name][i]) for name in table.column_names] for i in range(table.num_rows)]


def _plain_table(table: pa.Table) -> str:
    """Tab-separated, for the collapsed raw view."""
    lines = ["\t".join(table.column_names)]
    lines += ["\t".join(row) for row in _cells(table)]
    return "\n".join(lines)
