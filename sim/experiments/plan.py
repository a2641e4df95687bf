"""`capsim plan`: for each load level, the fewest replicas per pool that meet every SLO.

An SLO is `<metric> <op> <bound>`: a latency statistic `<name>_<p50|p90|p99|mean>_s` (`ttft_p99_s`,
`queue_mean_s`: the summary's `<name>_s` statistic) or a share of outcomes (`status_503_share`),
judged for every model over all its tiers. A fleet meets an SLO when the bound holds for the
95% confidence bound on the unfavourable side over the scenario's `replications` (the upper bound
for `<=`); with one replication, on the value itself (no interval).

Search: pools in scenario order, each by bisection on its replica count in [1, max] with the
pools before it at their answer and those after at max (greedy, so on several pools the answer
is minimal for each pool given the others, not a joint minimum). All load levels step together:
each round runs every level's next candidate, on the sweep's executors, resumably (a run folder
per level, fleet and seed). The reverse question, the most load a fleet sustains, bisects the
load between the levels' bounds with the replicas fixed.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sim.engine import Simulation
from sim.errors import InputError
from sim.experiments.intervals import interval, replication_seeds
from sim.experiments.sweep import (
    RunSpec,
    SweepProgress,
    execute_resumable,
    finished_run,
    safe_name,
    same_scenario,
    summary_metrics,
    write_table,
)
from sim.results.store import check_replaceable
from sim.scenario import Scenario
from sim.scenario_loader import load_scenario

TABLE_NAME = "plan.parquet"
_SLO = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
_LATENCY = re.compile(r"^([a-z0-9_]+)_(p50|p90|p99|mean)_s$")
_RATE = re.compile(r"^status_(\d{3})_share$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
SLO_FORMS = (
    "`<metric>_<p50|p90|p99|mean>_s<=seconds` (ttft_p99_s<=2, tpot_p99_s<=0.08, queue_mean_s<=1, "
    "e2e_p50_s<=10) or `status_<code>_share<=fraction` (status_503_share<=0.01)"
)


@dataclass(frozen=True)
class Slo:
    text: str
    name: str  # as written: ttft_p99_s
    metric: str  # in the summary metrics after "<model>.all.": ttft_s.p99
    op: str
    bound: float

    def judged(self, values: np.ndarray) -> float:
        """The value judged: the unfavourable 95% bound over replications (the upper one for
        `<=`), or the value itself with one replication; NaN when no run measured it."""
        mean, low, high = interval(values)
        if math.isnan(low):
            return mean
        return high if self.op in ("<=", "<") else low

    def met(self, values: np.ndarray) -> bool:
        judged = self.judged(values)
        return not math.isnan(judged) and _OPS[self.op](judged, self.bound)


def parse_slo(text: str) -> Slo:
    match = _SLO.match(text)
    if match is None:
        raise InputError(f"--slo {text!r}: expected {SLO_FORMS}")
    name, op, bound = match.groups()
    latency, rate = _LATENCY.match(name), _RATE.match(name)
    if latency is not None:
        metric = f"{latency.group(1)}_s.{latency.group(2)}"
        if latency.group(1) not in ("ttft", "tpot", "e2e", "queue"):
            raise InputError(
                f"--slo {text!r}: no latency {latency.group(1)!r}; allowed: ttft, tpot, e2e, queue"
            )
    elif rate is not None:
        metric = name
    else:
        raise InputError(f"--slo {text!r}: unknown metric {name!r}; expected {SLO_FORMS}")
    try:
        value = float(bound)
    except ValueError:
        raise InputError(f"--slo {text!r}: {bound!r} is not a number") from None
    return Slo(text, name, metric, op, value)


def parse_over(text: str, steps: int) -> tuple[str, list[float]]:
    """`path=LOW..HIGH` (`steps` levels, geometric when LOW > 0) or `path=v1,v2,...`."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise InputError(f"--over {text!r}: expected dotted.path=LOW..HIGH or dotted.path=v1,v2")
    try:
        if ".." in values:
            low, high = (float(v) for v in values.split("..", 1))
            if not low < high:
                raise InputError(f"--over {text!r}: LOW must be below HIGH")
            spaced = np.geomspace(low, high, steps) if low > 0 else np.linspace(low, high, steps)
            levels = [float(f"{v:.6g}") for v in spaced]
        else:
            levels = [float(v) for v in values.split(",")]
    except ValueError:
        raise InputError(f"--over {text!r}: the levels must be numbers") from None
    return path.strip(), levels


@dataclass(frozen=True)
class PoolRef:
    model: str
    pool: str
    gpus_per_replica: int
    price_per_gpu_hour_usd: float

    @property
    def column(self) -> str:
        return f"replicas.{self.model}.{self.pool}"

    def setting(self, replicas: int) -> str:
        return f"models.{self.model}.pools.{self.pool}.replicas={replicas}"


Fleet = tuple[int, ...]
Metrics = list[dict[str, float | int]]  # one per replication


class Planner:
    """Runs (level, fleet) points resumably and remembers their metrics."""

    def __init__(
        self,
        path: Path,
        out: Path,
        settings: Sequence[str],
        over: str | None,
        workers: int,
        scheduler: str | None,
        progress: SweepProgress | None,
    ) -> None:
        self.path, self.out, self.settings, self.over = path, out, list(settings), over
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self.base = load_scenario(path, self.settings)
        self.seeds = replication_seeds(self.base.seed, self.base.replications)
        self.pools = [
            PoolRef(m, p, pool.gpus_per_replica, self.base.gpu_prices_usd_per_hour[pool.gpu])
            for m, model in self.base.models.items()
            for p, pool in model.pools.items()
        ]
        self._done: dict[tuple[float | None, Fleet], Metrics] = {}

    def overrides(self, level: float | None, fleet: Fleet) -> list[str]:
        load = [f"{self.over}={level!r}"] if self.over is not None and level is not None else []
        return [
            *self.settings,
            *load,
            *(p.setting(n) for p, n in zip(self.pools, fleet, strict=True)),
        ]

    def folder(self, level: float | None, fleet: Fleet) -> Path:
        load = f"load={level:g}" if level is not None else "load=scenario"
        pools = ",".join(f"{p.model}.{p.pool}={n}" for p, n in zip(self.pools, fleet, strict=True))
        return self.out / load / safe_name(pools)

    def evaluate(self, points: list[tuple[float | None, Fleet]]) -> None:
        """Run every replication of the points not known yet (together, on the executor)."""
        todo = list(dict.fromkeys(p for p in points if p not in self._done))
        specs: list[RunSpec] = []
        for level, fleet in todo:
            overrides = self.overrides(level, fleet)
            scenario = self._validated(overrides)
            for seed in self.seeds:
                spec = RunSpec(
                    f"{self.folder(level, fleet).relative_to(self.out)}/seed={seed}",
                    str(self.path),
                    (*overrides, f"seed={seed}"),
                    str(self.folder(level, fleet) / f"seed={seed}"),
                    False,
                )
                check_replaceable(Path(spec.run_dir))
                if finished_run(spec) and not same_scenario(spec, scenario, seed):
                    raise InputError(
                        f"{self.out}: the finished run {spec.name} was made from a different "
                        "scenario; delete it or plan into another --out"
                    )
                specs.append(spec)
        execute_resumable(specs, self.workers, self.scheduler, self.progress)
        for level, fleet in todo:
            self._done[(level, fleet)] = [
                _metrics(self.folder(level, fleet) / f"seed={seed}") for seed in self.seeds
            ]

    def _validated(self, overrides: list[str]) -> Scenario:
        scenario = load_scenario(self.path, overrides)
        Simulation(scenario)
        return scenario

    def metrics(self, level: float | None, fleet: Fleet) -> Metrics:
        return self._done[(level, fleet)]

    def meets(self, slos: list[Slo], level: float | None, fleet: Fleet) -> bool:
        return all(slo.met(v) for slo, v in self.slo_values(slos, level, fleet).items())

    def slo_values(
        self, slos: list[Slo], level: float | None, fleet: Fleet
    ) -> dict[Slo, np.ndarray]:
        """Per SLO and model, the values over replications; every model must meet each SLO,
        so the worst model's judged value counts (the values of that model are returned)."""
        runs = self.metrics(level, fleet)
        result = {}
        for slo in slos:
            per_model = [
                np.array(
                    [run.get(f"{model}.all.{slo.metric}", _absent(slo)) for run in runs], float
                )
                for model in self.base.models
            ]
            judged = np.array([slo.judged(v) for v in per_model])
            if np.isnan(judged).any():  # a model without that metric cannot be shown to meet it
                result[slo] = per_model[int(np.flatnonzero(np.isnan(judged))[0])]
                continue
            worst = np.argmax(judged) if slo.op in ("<=", "<") else np.argmin(judged)
            result[slo] = per_model[int(worst)]
        return result


def _absent(slo: Slo) -> float:
    """A status no request got has a share of 0; a latency nobody measured is unknown."""
    return 0.0 if slo.metric.startswith("status_") else math.nan


def _metrics(run_dir: Path) -> dict[str, float | int]:
    return summary_metrics(json.loads((run_dir / "summary.json").read_text()))


@dataclass
class _Search:
    """One level's bisection: pool `index` in [low, high]; `fleet` is the feasible answer so far."""

    level: float | None
    fleet: list[int]
    index: int = -1  # -1: the all-max fleet is not judged yet
    low: int = 1
    high: int = 0
    feasible: bool = True

    def candidate(self) -> Fleet | None:
        if not self.feasible or self.index >= len(self.fleet):
            return None
        if self.index < 0:
            return tuple(self.fleet)
        trial = list(self.fleet)
        trial[self.index] = (self.low + self.high) // 2
        return tuple(trial)

    def judge(self, trial: Fleet, met: bool) -> None:
        if self.index < 0:
            self.feasible = met
            self._next_pool(0)
            return
        if met:
            self.high = trial[self.index]
            self.fleet[self.index] = self.high
        else:
            self.low = trial[self.index] + 1
        if self.low >= self.high:
            self._next_pool(self.index + 1)

    def _next_pool(self, index: int) -> None:
        self.index = index
        while self.index < len(self.fleet) and self.fleet[self.index] <= 1:
            self.index += 1
        if self.index < len(self.fleet):
            self.low, self.high = 1, self.fleet[self.index]


def run_plan(
    scenario_path: Path,
    slos: list[Slo],
    out_dir: Path,
    workers: int,
    over: tuple[str, list[float]] | None = None,
    max_replicas: int = 64,
    scheduler: str | None = None,
    progress: SweepProgress | None = None,
    settings: Sequence[str] = (),
) -> pa.Table:
    """For each load level (or the scenario's own load) the fewest replicas per pool meeting
    every SLO; writes and returns plan.parquet."""
    if not slos:
        raise InputError("--slo: at least one SLO")
    if max_replicas < 1:
        raise InputError(f"--max-replicas must be >= 1, got {max_replicas}")
    planner = _planner(scenario_path, out_dir, settings, over, workers, scheduler, progress)
    levels: list[float | None] = list(over[1]) if over is not None else [None]
    fleets = fewest_replicas(planner, slos, levels, max_replicas)
    rows = [
        _row(planner, slos, level, fleet, over) for level, fleet in zip(levels, fleets, strict=True)
    ]
    table = pa.table({name: [row[name] for row in rows] for name in rows[0]})
    write_table(table, out_dir.resolve() / TABLE_NAME)
    return table


def fewest_replicas(
    planner: Planner, slos: list[Slo], levels: Sequence[float | None], max_replicas: int
) -> list[Fleet | None]:
    """Per level, the fewest replicas per pool meeting every SLO (None: not met with
    `max_replicas` in every pool); the levels' bisections step together on the executor."""
    searches = [_Search(level, [max_replicas] * len(planner.pools)) for level in levels]
    while True:
        trials = [(s, t) for s in searches if (t := s.candidate()) is not None]
        if not trials:
            break
        planner.evaluate([(s.level, t) for s, t in trials])
        for search, trial in trials:
            search.judge(trial, planner.meets(slos, search.level, trial))
    return [tuple(s.fleet) if s.feasible else None for s in searches]


def run_capacity(
    scenario_path: Path,
    slos: list[Slo],
    out_dir: Path,
    workers: int,
    over: tuple[str, list[float]],
    steps: int = 8,
    scheduler: str | None = None,
    progress: SweepProgress | None = None,
    settings: Sequence[str] = (),
) -> pa.Table:
    """The reverse question: the most load (between the lowest and highest level of `over`,
    by `steps` bisection steps) that the scenario's fleet sustains within every SLO."""
    if not slos:
        raise InputError("--slo: at least one SLO")
    planner = _planner(scenario_path, out_dir, settings, over, workers, scheduler, progress)
    fleet = tuple(planner.base.models[p.model].pools[p.pool].replicas for p in planner.pools)
    low, high = min(over[1]), max(over[1])
    planner.evaluate([(low, fleet), (high, fleet)])
    if planner.meets(slos, high, fleet):
        best: float | None = high
    elif not planner.meets(slos, low, fleet):
        best = None
    else:
        for _ in range(steps):
            mid = float(f"{(low + high) / 2:.6g}")
            planner.evaluate([(mid, fleet)])
            if planner.meets(slos, mid, fleet):
                low = mid
            else:
                high = mid
        best = low
    row = _row(planner, slos, best, fleet if best is not None else None, over)
    row["sustained"] = best is not None
    table = pa.table({name: [value] for name, value in row.items()})
    write_table(table, out_dir.resolve() / TABLE_NAME)
    return table


def _planner(
    scenario_path: Path,
    out_dir: Path,
    settings: Sequence[str],
    over: tuple[str, list[float]] | None,
    workers: int,
    scheduler: str | None,
    progress: SweepProgress | None,
) -> Planner:
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    out = out_dir.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, and a plan's results are a folder")
    path = over[0] if over is not None else None
    return Planner(scenario_path.resolve(), out, settings, path, workers, scheduler, progress)


def _row(
    planner: Planner,
    slos: list[Slo],
    level: float | None,
    fleet: Fleet | None,
    over: tuple[str, list[float]] | None,
) -> dict[str, Any]:
    """One line of plan.parquet: the load, whether the SLOs were met within the bounds, the
    replicas per pool, GPUs, money (means over replications) and each SLO's judged value."""
    row: dict[str, Any] = {}
    if over is not None:
        row[over[0].rsplit(".", 1)[-1]] = level
    row["met"] = fleet is not None
    for i, pool in enumerate(planner.pools):
        row[pool.column] = fleet[i] if fleet is not None else None
    if fleet is None:
        for name in ("gpus", *_MONEY, *_BOUNDS, *(f"slo.{s.name}" for s in slos)):
            row[name] = None
        return row
    runs = planner.metrics(level, fleet)
    row["gpus"] = sum(p.gpus_per_replica * n for p, n in zip(planner.pools, fleet, strict=True))
    cost_per_hour = sum(
        p.gpus_per_replica * n * p.price_per_gpu_hour_usd
        for p, n in zip(planner.pools, fleet, strict=True)
    )
    models = list(planner.base.models)
    tokens_per_s = _per_run(runs, [f"{m}.all.tokens_per_s" for m in models])
    revenue_per_hour = _per_run(runs, [f"{m}.all.revenue_usd_per_s" for m in models]) * 3600
    row["fleet_cost_per_hour_usd"] = cost_per_hour
    row["tokens_per_s"] = float(tokens_per_s.mean())
    row["cost_per_million_tokens_usd"] = (
        cost_per_hour / (row["tokens_per_s"] * 3600 / 1e6) if row["tokens_per_s"] > 0 else math.nan
    )
    with np.errstate(divide="ignore"):
        _with_interval(
            row, "cost_per_million_tokens_usd", cost_per_hour / (tokens_per_s * 3600 / 1e6)
        )
    _with_interval(row, "revenue_per_hour_usd", revenue_per_hour)
    _with_interval(row, "margin_per_hour_usd", revenue_per_hour - cost_per_hour)
    for slo, values in planner.slo_values(slos, level, fleet).items():
        row[f"slo.{slo.name}"] = slo.judged(values)
    return row


_MONEY = (
    "fleet_cost_per_hour_usd",
    "tokens_per_s",
    "cost_per_million_tokens_usd",
    "revenue_per_hour_usd",
    "margin_per_hour_usd",
)


_BANDED = ("cost_per_million_tokens_usd", "revenue_per_hour_usd", "margin_per_hour_usd")
_BOUNDS = tuple(f"{name}_{end}" for name in _BANDED for end in ("low", "high"))


def _per_run(runs: Metrics, names: list[str]) -> np.ndarray:
    """Each replication's sum of the named metrics (absent counts 0)."""
    return np.array([sum(float(run.get(n, 0.0)) for n in names) for run in runs], dtype=float)


def _with_interval(row: dict[str, Any], name: str, values: np.ndarray) -> None:
    """The mean over replications under `name` (unless set) and its 95% interval under
    `<name>_low` and `<name>_high` (NaN with one replication), the plots' bands."""
    mean, low, high = interval(values[np.isfinite(values)])
    row.setdefault(name, mean)
    row[f"{name}_low"] = low
    row[f"{name}_high"] = high
