"""Plots: importing capsim chooses no matplotlib backend; every plot function returns a Figure
whose axes are labelled with units."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from matplotlib.figure import Figure

import sim
from sim.engine import RunOutput, simulate
from sim.perf.table import perf_report, plot_perf
from sim.report import (
    compare_plots,
    dedicated_plots,
    economics_plots,
    gateway_plots,
    plan_plots,
    plots,
    sweep_plots,
)
from sim.report.style import PLOT_FUNCTIONS, save
from sim.results.cache_hits import cache_hits_over_time
from sim.results.economics import economics
from sim.results.summary import summarize
from sim.scenario_loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
UNIT = re.compile(r"\(.+\)\s*$")  # "time to first token (s)", "KV-cache blocks (% of capacity)"


def _all_sim_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(sim.__path__, "sim.") if m.name != "sim.__main__"]


def test_importing_every_sim_module_sets_no_backend() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_all_sim_modules()!r}: importlib.import_module(name)\n"
        "import matplotlib\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert matplotlib.rcParams._get_backend_or_none() is None, matplotlib.get_backend()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


QUICK = ["duration_s=40", "warmup_s=5", "models.llama-8b.pools.standard.replicas=2"]


@pytest.fixture(scope="module")
def run() -> RunOutput:
    return simulate(load_scenario(ROOT / "scenarios" / "quickstart.yaml", QUICK))


def _economics(run: RunOutput) -> dict[str, Any]:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", QUICK)
    summary = summarize(run.requests, run.timeseries, 5.0, 40.0)
    return economics(scenario, run.requests, summary)


QUICK_REPLICA_USD = {("llama-8b", "standard"): 8.0}  # one H100 per replica


SWEEP = pa.table(
    {
        "replicas": [1, 1, 2, 2, 1, 1, 2, 2],
        "rate_per_s": [2.0] * 4 + [4.0] * 4,
        "seed": [0, 1, 0, 1, 0, 1, 0, 1],
        "run_dir": [f"r{i}" for i in range(8)],
        "m.all.requests": [10, 12, 11, 9, 20, 22, 21, 19],
        "m.all.ttft_s.p99": [0.5, 0.6, 0.2, 0.25, 2.0, 2.5, 0.4, 0.5],
    }
)

COMPARE = pa.table(
    {
        "variant": ["a", "b", "a", "b"],
        "metric": ["m.all.ttft_s.p99"] * 2 + ["m.all.cache_hit_ratio"] * 2,
        "mean": [0.5, 0.4, 0.2, 0.6],
        "ci_low": [0.45, 0.35, 0.15, 0.55],
        "ci_high": [0.55, 0.45, 0.25, 0.65],
    }
)

PLAN = pa.table(
    {
        "rate_per_s": [4.0, 8.0, 16.0],
        "met": [True, True, False],
        "replicas.m.p": [2, 3, None],
        "cost_per_million_tokens_usd": [1.5, 1.2, None],
        "fleet_cost_per_hour_usd": [16.0, 24.0, None],
        "revenue_per_hour_usd": [10.0, 30.0, None],
        "margin_per_hour_usd": [-6.0, 6.0, None],
        "margin_per_hour_usd_low": [-8.0, 3.0, None],
        "margin_per_hour_usd_high": [-4.0, 9.0, None],
    }
)

DEDICATED = pa.table(
    {
        "traffic_multiplier": [0.25, 0.584, 1.0, 2.0],
        "dedicated_usd_per_month": [5840.0, 5840.0, 11680.0, None],
        "serverless_usd_per_month": [2500.0, 5840.0, 10000.0, 20000.0],
    }
)

# One call per plot function: a new plot function needs a line here (the test below checks).
CASES: dict[str, Callable[[RunOutput], Figure]] = {
    "sim.report.plots.latency_cdf": lambda r: plots.latency_cdf(r.requests, 5.0),
    "sim.report.plots.latency_over_time": lambda r: plots.latency_over_time(
        r.requests, r.timeseries
    ),
    "sim.report.plots.kv_cache_over_time": lambda r: plots.kv_cache_over_time(r.timeseries),
    "sim.report.plots.cache_hit_by_turn": lambda r: plots.cache_hit_by_turn(
        {"least_loaded": cache_hits_over_time(r.requests, r.timeseries)}
    ),
    "sim.report.sweep_plots.sweep_metric": lambda r: sweep_plots.sweep_metric(
        SWEEP, "m.all.ttft_s.p99", "rate_per_s"
    ),
    "sim.report.gateway_plots.account_limits": lambda r: gateway_plots.account_limits(
        r.limits, "acme"
    ),
    "sim.report.gateway_plots.revenue_over_time": lambda r: gateway_plots.revenue_over_time(
        r.requests
    ),
    "sim.report.gateway_plots.outcomes_over_time": lambda r: gateway_plots.outcomes_over_time(
        r.requests
    ),
    "sim.report.economics_plots.revenue_and_cost_over_time": (
        lambda r: economics_plots.revenue_and_cost_over_time(
            r.requests, r.timeseries, QUICK_REPLICA_USD, 5.0
        )
    ),
    "sim.report.economics_plots.cost_per_mtok_by_model": (
        lambda r: economics_plots.cost_per_mtok_by_model(_economics(r))
    ),
    "sim.perf.table.plot_perf": lambda r: plot_perf(perf_report("h100", "llama-3.1-8b", 1, 2048)),
    "sim.report.compare_plots.variant_latency_cdfs": lambda r: compare_plots.variant_latency_cdfs(
        {"a": r.requests, "b": r.requests}, 5.0
    ),
    "sim.report.compare_plots.variant_metrics": lambda r: compare_plots.variant_metrics(
        COMPARE, ["m.all.ttft_s.p99", "m.all.cache_hit_ratio"]
    ),
    "sim.report.plan_plots.capacity_curve": lambda r: plan_plots.capacity_curve(PLAN, "rate_per_s"),
    "sim.report.plan_plots.cost_curve": lambda r: plan_plots.cost_curve(PLAN, "rate_per_s"),
    "sim.report.plan_plots.money_curve": lambda r: plan_plots.money_curve(PLAN, "rate_per_s"),
    "sim.report.dedicated_plots.serverless_vs_dedicated": (
        lambda r: dedicated_plots.serverless_vs_dedicated(DEDICATED, 0.584)
    ),
}


def test_every_plot_function_has_a_case() -> None:
    for name in _all_sim_modules():
        importlib.import_module(name)
    assert set(PLOT_FUNCTIONS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_plot_is_a_figure_with_units_on_every_axis(
    name: str, run: RunOutput, tmp_path: Path
) -> None:
    fig = CASES[name](run)
    assert isinstance(fig, Figure)
    assert fig.axes
    for ax in fig.axes:
        assert ax.has_data(), f"{name}: an empty panel"
        labels = [ax.get_ylabel()]
        if ax.get_xlabel() or not _shares_x_with_a_labelled_axis(ax, fig):
            labels.append(ax.get_xlabel())
        for label in labels:
            assert UNIT.search(label), f"{name}: axis label {label!r} has no unit"
    assert save(fig, tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _shares_x_with_a_labelled_axis(ax: Any, fig: Figure) -> bool:
    """A panel above another with the same x axis shows its label once, at the bottom."""
    return any(
        other is not ax and other.get_xlabel() and ax.get_shared_x_axes().joined(ax, other)
        for other in fig.axes
    )


def test_sweep_plot_draws_a_band_only_where_there_are_replications() -> None:
    with_seeds = sweep_plots.sweep_metric(SWEEP, "m.all.ttft_s.p99", "rate_per_s")
    assert len(with_seeds.axes[0].collections) == 2  # one band per replicas value
    one_seed = SWEEP.filter(pc.equal(SWEEP["seed"], 0))
    single = sweep_plots.sweep_metric(one_seed, "m.all.ttft_s.p99", "rate_per_s")
    assert not single.axes[0].collections
    assert len(single.axes[0].lines) == 2
