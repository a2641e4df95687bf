"""`capsim dedicated`: one account's serverless bill against dedicated GPUs of its own.

Dedicated sizing: the account's traffic ALONE (its traffic sources, the model ids they send to,
the account itself; no other account, no rate limits or token budget, which a dedicated
deployment does not have, and a fixed replica count: autoscaling off) on pools of the same
hardware, bisected on replicas against the SLOs by `capsim plan`'s search (sim.experiments.plan:
the same SLO grammar, 95% bound over replications, executors and resume). Dedicated cost per
hour: replicas x GPUs per replica x the scenario's `gpu_prices_usd_per_hour`; monthly = x 730 h
(365 x 24 / 12, the cloud price lists' month).

Serverless cost: what the account is billed in the FULL scenario, sharing the fleet with every
other account (its prefix-cache hits, refusals and retries as they are there): the attempts of
the account served and finished in the measured window, per hour, mean over replications (the
definition of revenue in docs/economics.md). Per-token prices are flat, so at `k` times its
traffic the account pays `k` times that: serverless cost is a line through 0.

Traffic levels scale the account's arrival rates by a multiplier (rates, profile points, a
trace's time_scale; a request cap scales too). Dedicated cost is a staircase in the multiplier.
The break-even is the lowest multiplier where the line reaches the staircase, found without a
grid: from k = cost of the smallest fleet / serverless cost per unit multiplier, size the fleet
at k; if serverless at k does not yet cover it, no lower multiplier can either (the fleet only
grows with traffic), so step to k = that fleet's cost / serverless cost per unit, until
serverless at k covers the fleet at k (the break-even) or k passes the highest level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sim.errors import InputError
from sim.experiments.plan import Fleet, Planner, Slo, fewest_replicas
from sim.experiments.sweep import SweepProgress, write_table
from sim.results.provenance import write_json
from sim.results.store import resolved_data
from sim.scenario import Scenario
from sim.scenario_loader import load_scenario
from sim.status import STATUS_OK

TABLE_NAME = "dedicated.parquet"
INFO_NAME = "dedicated.json"
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12: the month of cloud on-demand price lists
# Serverless "covers" dedicated within this relative margin: above the 5e-6 by which a level
# rounded to 6 significant digits can fall short, so each next level is strictly higher.
_RELATIVE = 1e-5


def account_alone(base: Scenario, account: str) -> tuple[list[str], list[dict[str, Any]]]:
    """`--set` overrides that leave only `account`'s traffic, on the model ids it sends to,
    with no rate limits, no token budget and fixed replica counts; and its traffic sources as
    data (their index is their place in the new `traffic` list)."""
    names = [a.name for a in base.accounts]
    if account not in names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise InputError(f"--account {account!r}: no such account; the scenario's: {shown}")
    data = resolved_data(base)
    traffic = [t for t in data["traffic"] if t["account"] == account]
    if not traffic:
        raise InputError(f"--account {account!r}: sends no traffic in the scenario")
    used = {t["model"] for t in traffic} | {t["migrate_to"] for t in traffic if t["migrate_to"]}
    models = {m: data["models"][m] for m in data["models"] if m in used}
    for model in models.values():
        for pool in model["pools"].values():
            pool["autoscaling"] = None
    (entry,) = (a for a in data["accounts"] if a["name"] == account)
    entry = {**entry, "monthly_budget_usd": None, "spent_usd_at_start": 0.0}
    tiers = data["spend_tiers"]
    tiers[str(entry["spend_tier"])]["monthly_budget_usd"] = None
    settings = [
        f"models={json.dumps(models)}",
        f"accounts={json.dumps([entry])}",
        f"traffic={json.dumps(traffic)}",
        "batch_jobs=[]",  # Batch is sold serverless only; its jobs name the other accounts
        "rate_limits=null",
        f"spend_tiers={json.dumps(tiers)}",
        "variants={}",
    ]
    return settings, traffic


def scaled_traffic(traffic: list[dict[str, Any]], multiplier: float) -> list[str]:
    """Overrides that multiply the arrival rate of each source by `multiplier`."""
    settings = []
    for i, source in enumerate(traffic):
        arrivals, trace = source["arrivals"], source["trace"]
        if trace is not None:
            settings.append(f"traffic.{i}.trace.time_scale={trace['time_scale'] * multiplier!r}")
        elif arrivals["process"] == "profile":
            points = [[t, rate * multiplier] for t, rate in arrivals["points"]]
            settings.append(f"traffic.{i}.arrivals.points={json.dumps(points)}")
        else:
            rate = arrivals["rate_per_s"] * multiplier
            settings.append(f"traffic.{i}.arrivals.rate_per_s={rate!r}")
        if source["max_requests"] is not None:
            capped = max(1, round(source["max_requests"] * multiplier))
            settings.append(f"traffic.{i}.max_requests={capped}")
    return settings


class AccountPlanner(Planner):
    """The plan's runner with the load level read as a multiplier of the account's traffic."""

    def __init__(self, traffic: list[dict[str, Any]], *args: Any) -> None:
        super().__init__(*args)
        self.traffic = traffic

    def overrides(self, level: float | None, fleet: Fleet) -> list[str]:
        scaling = scaled_traffic(self.traffic, level) if level is not None else []
        return [*super().overrides(level, fleet), *scaling]

    def check(self) -> None:
        """InputError now, before any run, if the account alone is not a valid scenario."""
        self._validated(self.overrides(1.0, (1,) * len(self.pools)))


def account_bill(run_dir: Path, account: str) -> tuple[float, float]:
    """The account's bill in USD per hour and its served requests per second: its attempts
    served (200) that finished in the measured window, as the economics' revenue counts."""
    summary = json.loads((run_dir / "summary.json").read_text())
    start_s, end_s = summary["warmup_s"], summary["arrivals_end_s"]
    window_s = summary["measured_window_s"]
    requests = pq.read_table(
        run_dir / "requests.parquet", columns=["account", "status", "finished_s", "cost_usd"]
    )
    finished, status = requests["finished_s"], requests["status"]
    served = pc.and_(pc.equal(requests["account"], account), pc.equal(status, STATUS_OK))
    in_window = pc.and_(pc.greater_equal(finished, start_s), pc.less(finished, end_s))
    kept = requests.filter(pc.and_(served, in_window))
    usd = float(pc.sum(kept["cost_usd"]).as_py() or 0.0)
    return usd / window_s * 3600, kept.num_rows / window_s


@dataclass(frozen=True)
class Dedicated:
    table: pa.Table  # dedicated.parquet: one row per traffic level
    info: dict[str, Any]  # dedicated.json: the answer at the scenario's traffic, the break-even


def run_dedicated(
    scenario_path: Path,
    account: str,
    slos: list[Slo],
    out_dir: Path,
    workers: int,
    levels: Sequence[float],
    max_replicas: int = 64,
    scheduler: str | None = None,
    progress: SweepProgress | None = None,
    settings: Sequence[str] = (),
) -> Dedicated:
    """Size, price and compare (module docstring); writes dedicated.parquet and dedicated.json
    under `out_dir`, the runs in `out_dir/serverless` and `out_dir/dedicated` (resumable)."""
    if not slos:
        raise InputError("--slo: at least one SLO")
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if max_replicas < 1:
        raise InputError(f"--max-replicas must be >= 1, got {max_replicas}")
    if not levels or min(levels) <= 0 or not all(math.isfinite(v) for v in levels):
        raise InputError(f"--traffic: multipliers must be finite and > 0, got {list(levels)}")
    out = out_dir.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, and the results are a folder")
    path = scenario_path.resolve()
    base = load_scenario(path, settings)
    alone, traffic = account_alone(base, account)
    planner = AccountPlanner(
        traffic, path, out / "dedicated", [*settings, *alone], None, workers, scheduler, progress
    )
    planner.check()
    shared = Planner(path, out / "serverless", settings, None, workers, scheduler, progress)
    fleet = tuple(shared.base.models[p.model].pools[p.pool].replicas for p in shared.pools)
    shared.evaluate([(None, fleet)])
    bills = [account_bill(shared.folder(None, fleet) / f"seed={s}", account) for s in shared.seeds]
    serverless_per_hour = float(np.mean([usd for usd, _ in bills]))
    requests_per_s = float(np.mean([rate for _, rate in bills]))

    grid = sorted({float(f"{v:.6g}") for v in (*levels, 1.0)})
    fleets: dict[float, Fleet | None] = dict(
        zip(grid, fewest_replicas(planner, slos, grid, max_replicas), strict=True)
    )

    def cost_per_hour(fleet: Fleet) -> float:
        return sum(
            p.gpus_per_replica * n * p.price_per_gpu_hour_usd
            for p, n in zip(planner.pools, fleet, strict=True)
        )

    break_even = None
    top = max(grid)
    if serverless_per_hour > 0:
        level = float(f"{cost_per_hour((1,) * len(planner.pools)) / serverless_per_hour:.6g}")
        while level <= top:
            if level not in fleets:
                fleets[level] = fewest_replicas(planner, slos, [level], max_replicas)[0]
            sized = fleets[level]
            if sized is None:
                break
            fleet_cost = cost_per_hour(sized)
            if serverless_per_hour * level >= fleet_cost * (1 - _RELATIVE):
                break_even = level
                break
            level = float(f"{fleet_cost / serverless_per_hour:.6g}")

    rows = []
    for level in sorted(fleets):
        sized = fleets[level]
        row: dict[str, Any] = {
            "traffic_multiplier": level,
            "requests_per_s": level * requests_per_s,
            "met": sized is not None,
        }
        for i, pool in enumerate(planner.pools):
            row[pool.column] = sized[i] if sized is not None else None
        dedicated = cost_per_hour(sized) if sized is not None else None
        row["gpus"] = (
            sum(p.gpus_per_replica * n for p, n in zip(planner.pools, sized, strict=True))
            if sized is not None
            else None
        )
        row["dedicated_usd_per_hour"] = dedicated
        row["dedicated_usd_per_month"] = (
            dedicated * HOURS_PER_MONTH if dedicated is not None else None
        )
        row["serverless_usd_per_hour"] = serverless_per_hour * level
        row["serverless_usd_per_month"] = serverless_per_hour * level * HOURS_PER_MONTH
        row["cheaper"] = _cheaper(dedicated, serverless_per_hour * level)
        judged = planner.slo_values(slos, level, sized) if sized is not None else {}
        for slo in slos:
            row[f"slo.{slo.name}"] = slo.judged(judged[slo]) if slo in judged else None
        rows.append(row)
    table = pa.table({name: [row[name] for row in rows] for name in rows[0]})
    at_scenario = next(row for row in rows if row["traffic_multiplier"] == 1.0)
    at_break_even = next((r for r in rows if r["traffic_multiplier"] == break_even), None)
    info = {
        "account": account,
        "slos": [slo.text for slo in slos],
        "hours_per_month": HOURS_PER_MONTH,
        "serverless": {
            "source": "the account's bill in the full scenario (shared fleet), measured window, "
            "mean over replications; linear in the traffic multiplier",
            "usd_per_hour": serverless_per_hour,
            "usd_per_month": serverless_per_hour * HOURS_PER_MONTH,
            "requests_per_s": requests_per_s,
        },
        "at_scenario_traffic": at_scenario,
        "break_even": at_break_even,
        "searched_up_to_multiplier": top,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, out / TABLE_NAME)
    write_json(out / INFO_NAME, info)
    return Dedicated(table, info)


def _cheaper(dedicated_usd: float | None, serverless_usd: float) -> str | None:
    """Which costs less; `equal` within the margin (at the break-even); None: not sized."""
    if dedicated_usd is None:
        return None
    if dedicated_usd < serverless_usd * (1 - _RELATIVE):
        return "dedicated"
    return "serverless" if dedicated_usd > serverless_usd * (1 + _RELATIVE) else "equal"
