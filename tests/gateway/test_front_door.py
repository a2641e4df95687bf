"""The limits, budgets and billing of the front door, end to end on small slot-model runs
(fixed service times: every number below can be worked out by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from helpers import tables_equal

from sim.engine import simulate
from sim.gateway.limits import POLICIES
from sim.gateway.ratelimit import RateLimitCheck
from sim.request import Request
from sim.results.bill import bill
from sim.results.summary import summarize
from sim.scenario import Scenario
from sim.status import STATUS_BUDGET, STATUS_OK, STATUS_RATE_LIMITED

ROOT = Path(__file__).resolve().parents[2]


def _scenario(
    traffic: list[dict[str, Any]], accounts: list[dict[str, Any]], **extra: Any
) -> Scenario:
    data: dict[str, Any] = {
        "name": "front-door",
        "duration_s": 600,
        "drain_s": 60,
        "sample_interval_s": 60,
        "models": {
            "m": {
                "architecture": "llama-3.1-8b",
                "pools": {
                    "p": {"max_num_seqs": 10_000, "perf": {"model": "fixed", "service_s": 0.1}}
                },
            }
        },
        "accounts": accounts,
        "traffic": traffic,
        "rate_limits": {},
    }
    return Scenario.model_validate(data | extra)


def _traffic(name: str, account: str, arrivals: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "account": account,
        "model": "m",
        "arrivals": arrivals,
        "prompt_tokens": {"dist": "constant", "value": 100},
        "output_tokens": {"dist": "constant", "value": 100},
    } | extra


def _refused_share(requests: pa.Table, start_s: float, end_s: float) -> float:
    arrival = requests["arrival_s"].to_numpy()
    status = requests["status"].to_numpy()
    window = (arrival >= start_s) & (arrival < end_s)
    return float((status[window] == STATUS_RATE_LIMITED).mean())


def test_traffic_doubling_in_an_hour_gets_no_429() -> None:
    """Generated tokens start at 75% of the 36k/min floor and double over the hour: the
    adaptive limit keeps up."""
    points = [[t * 600, 4.5 * 2 ** (t / 6)] for t in range(7)]
    arrivals = {"process": "profile", "interpolation": "linear", "points": points}
    scenario = _scenario(
        [_traffic("t", "a", arrivals)],
        [{"name": "a", "spend_tier": 4}],
        duration_s=3600,
    )
    result = simulate(scenario)
    status = result.requests["status"].to_numpy()
    assert status.size > 20_000 and (status == STATUS_OK).all()
    limits = result.limits
    generated = limits["limit_generated_tps"].to_numpy()
    assert generated[-1] > 1.6 * 600  # the limit grew with the traffic


def test_tenfold_step_gets_429s_that_fall_as_the_limit_grows() -> None:
    arrivals = {"process": "profile", "points": [[0, 1.0], [300, 10.0]]}
    scenario = _scenario(
        [_traffic("t", "a", arrivals)],
        [{"name": "a", "spend_tier": "unlimited"}],
        duration_s=4500,
    )
    requests = simulate(scenario).requests
    assert _refused_share(requests, 0, 300) == 0
    early = _refused_share(requests, 300, 1200)
    middle = _refused_share(requests, 1800, 2700)
    late = _refused_share(requests, 3900, 4500)
    assert early > 0.25 and early > middle > late
    assert late == 0


def _check(output_estimate: str = "none", **limits: Any) -> RateLimitCheck:
    output = {"dist": "lognormal", "median": 100, "sigma": 0.5, "max": 500}
    scenario = _scenario(
        [_traffic("t", "a", {"process": "poisson", "rate_per_s": 1}, output_tokens=output)],
        [{"name": "a", "limits": {"policy": "fixed", **limits}}],
        rate_limits={"output_estimate": output_estimate},
    )
    assert scenario.rate_limits is not None
    return RateLimitCheck(scenario, scenario.rate_limits)


def _request(i: int, now_s: float, prompt: int) -> Request:
    return Request(i, "t", "a", "m", "standard", now_s, prompt, 10)


@pytest.mark.parametrize("cached_share", [0.0, 1.0])
def test_uncached_limit_counts_only_uncached_tokens(cached_share: float) -> None:
    """A fully cached workload (all but the last prompt token a hit) never meets the uncached
    limit that the same prompts, uncached, run into at once."""
    check = _check(prompt_tpm=1e9, uncached_prompt_tpm=60_000, generated_tpm=1e9)
    statuses = []
    for i in range(600):  # 10 prompts of 10,000 tokens a second: 100x the uncached limit
        now = i * 0.1
        request = _request(i, now, 10_000)
        status = check.admit(request, now)
        request.status = status or STATUS_OK
        request.cached_tokens = round(cached_share * (request.prompt_tokens - 1))
        check.settle(request, now)
        statuses.append(request.status)
    refused = statuses.count(STATUS_RATE_LIMITED)
    assert (refused == 0) if cached_share else (refused > 500)


def test_output_estimate_reserves_the_output_cap_and_refunds_the_rest() -> None:
    """With `output_estimate: max_tokens`, admission takes the traffic's output cap (its
    length law's max, 500) from the generated bucket; the end charges what was generated."""
    check = _check("max_tokens", prompt_tpm=1e9, uncached_prompt_tpm=1e9, generated_tpm=1200)
    request = _request(0, 0.0, 10)
    assert check.admit(request, 0.0) == 0
    buckets = check.buckets["a", "m"]
    assert buckets.levels_at(0.0)[2] == 1200 - 500
    second = _request(1, 0.0, 10)
    assert check.admit(second, 0.0) == 0
    third = _request(2, 0.0, 10)
    assert check.admit(third, 0.0) == 0  # 200 left: not empty
    assert check.admit(_request(3, 0.0, 10), 0.0) == STATUS_RATE_LIMITED  # -300: empty
    for done in (request, second, third):
        done.status = STATUS_OK
        check.settle(done, 0.0)  # 10 generated each: 490 back each
    assert buckets.levels_at(0.0)[2] == 1200 - 30
    without = _check(prompt_tpm=1e9, uncached_prompt_tpm=1e9, generated_tpm=1200)
    assert without.admit(_request(0, 0.0, 10), 0.0) == 0
    assert without.buckets["a", "m"].levels_at(0.0)[2] == 1200


def test_budget_refuses_from_the_first_request_after_spend_crosses_it_until_the_reset() -> None:
    """$1 budget, $0.90 spent at the start; each request costs $0.02 (100 + 100 tokens at
    $100/M): the 5th served request crosses it; budget periods of 200 s."""
    scenario = _scenario(
        [_traffic("t", "a", {"process": "constant", "rate_per_s": 1})],
        [{"name": "a", "monthly_budget_usd": 1.0, "spent_usd_at_start": 0.9}],
        duration_s=300,
        billing={"budget_period": 200},
        models={
            "m": {
                "architecture": "llama-3.1-8b",
                "prices": {"input_usd_per_mtok": 100, "output_usd_per_mtok": 100},
                "pools": {"p": {"perf": {"model": "fixed", "service_s": 0.5}}},
            }
        },
    )
    requests = simulate(scenario).requests.sort_by("arrival_s")
    arrival = requests["arrival_s"].to_numpy()
    status = requests["status"].to_numpy()
    cost = requests["cost_usd"].to_numpy()
    served = status == STATUS_OK
    assert np.allclose(cost[served], 0.02) and (cost[~served] == 0).all()
    # 0.90 + 5 x 0.02 = 1.00 once the 5th (arrived at 4 s) finishes at 4.5 s
    first = int(np.argmax(status == STATUS_BUDGET))
    assert arrival[first] == 5.0 and served[:first].all()
    budget_period = (arrival >= 5.0) & (arrival < 200.0)
    assert (status[budget_period] == STATUS_BUDGET).all()
    # A fresh period with nothing spent: the budget buys 50 requests again (51 if the sum of
    # fifty $0.02 rounds below $1), then 402s to the end.
    after = status[arrival >= 200.0]
    again = int(np.argmax(after == STATUS_BUDGET))
    assert again in (50, 51) and (after[:again] == STATUS_OK).all()
    assert (after[again:] == STATUS_BUDGET).all()


def test_a_bill_computed_by_hand_to_the_cent() -> None:
    """30 Standard and 20 Priority requests of 10,000 prompt and 2,000 output tokens at $3 /
    $15 per M: Standard 30 x $0.06 = $1.80, Priority 20 x $0.06 x 1.5 = $1.80."""
    model = {
        "architecture": "llama-3.1-8b",
        "prices": {"input_usd_per_mtok": 3, "output_usd_per_mtok": 15},
        "pools": {"p": {"max_num_seqs": 100, "perf": {"model": "fixed", "service_s": 1}}},
    }
    lengths = {
        "prompt_tokens": {"dist": "constant", "value": 10_000},
        "output_tokens": {"dist": "constant", "value": 2_000},
    }
    traffic = [
        _traffic("std", "a", {"process": "constant", "rate_per_s": 1}, max_requests=30, **lengths),
        _traffic(
            "prio",
            "a",
            {"process": "constant", "rate_per_s": 1},
            max_requests=20,
            tier_mix={"priority": 1.0},
            **lengths,
        ),
    ]
    scenario = _scenario(
        traffic,
        [{"name": "a", "spend_tier": "unlimited", "limits": {"policy": "none"}}],
        duration_s=100,
        models={"m": model},
    )
    result = simulate(scenario)
    table = bill(result.requests)
    by_tier = dict(zip(table["tier"].to_pylist(), table["cost_usd"].to_pylist(), strict=True))
    assert round(by_tier["standard"], 2) == 1.80 and round(by_tier["priority"], 2) == 1.80
    assert table["requests"].to_pylist() == [20, 30]  # priority, standard
    summary = summarize(result.requests, result.timeseries, 0.0, 100.0)
    assert round(summary["revenue"]["total_usd"], 2) == 3.60


def test_cached_tokens_are_billed_at_half_the_input_price_by_default() -> None:
    from sim.gateway.billing import price_book

    scenario = _scenario(
        [_traffic("t", "a", {"process": "poisson", "rate_per_s": 1})], [{"name": "a"}]
    )
    book = price_book(scenario)  # llama-3.1-8b: up to 16B, $0.20/M in and out
    assert book.cost_usd("m", "standard", 1_000_000, 400_000, 0) == pytest.approx(0.16)
    assert book.cost_usd("m", "priority", 0, 0, 1_000_000) == pytest.approx(0.30)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_contract_every_policy_end_to_end(policy: str) -> None:
    """Every attempt is one row; refused ones cost nothing and carry the limits in force;
    served ones are billed; the same seed gives the same records."""
    scenario = _scenario(
        [_traffic("t", "a", {"process": "poisson", "rate_per_s": 20})],
        [{"name": "a", "limits": {"policy": policy}}],
        duration_s=120,
    )
    first = simulate(scenario)
    again = simulate(scenario)
    assert tables_equal(first.requests, again.requests)
    assert tables_equal(first.limits, again.limits)
    req = first.requests
    status = req["status"].to_numpy()
    cost = req["cost_usd"].to_numpy()
    assert (cost[status == STATUS_OK] > 0).all() and (cost[status != STATUS_OK] == 0).all()
    assert not np.isnan(req["limit_generated_tps"].to_numpy()).any()
    limits = first.limits
    # limits.parquet covers [0, duration_s); 429s are retried, some during the drain.
    sampled = req["arrival_s"].to_numpy() < scenario.duration_s
    assert sum(limits["attempts"].to_pylist()) == int(sampled.sum())
    rate_limited = int((status[sampled] == STATUS_RATE_LIMITED).sum())
    assert sum(limits["rate_limited"].to_pylist()) == rate_limited


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            "spend_tier: 1}",
            "spend_tier: 7}",
            "spend_tier: 7}",
            "accounts.1.spend_tier: must be one of 1, 2, 3, 4 or 'unlimited', got 7",
        ),
        (
            "routing: {policy: least_loaded}",
            "routing: {policy: least_loaded}\n    prices: {input_usd_per_mtok: -1, "
            "output_usd_per_mtok: 1}",
            "prices:",
            "models.llama-8b.prices.input_usd_per_mtok: must be >= 0.0, got -1",
        ),
        (
            "rate_limits: {}",
            "rate_limits:\n  limits: {policy: adaptve}",
            "  limits: {policy: adaptve}",
            "rate_limits.limits: unknown policy 'adaptve'; allowed: 'adaptive', 'fixed', 'none'",
        ),
        (
            "accounts:",
            "spend_tiers:\n  5: {ceiling_multiplier: 3}\naccounts:",
            "  5:",
            "spend_tiers.5: must be one of 1, 2, 3, 4 or 'unlimited', got 5",
        ),
    ],
)
def test_bad_input_exits_2_naming_file_line_and_field(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    text = (ROOT / "scenarios" / "quickstart.yaml").read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    done = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    line = next(i for i, row in enumerate(path.read_text().splitlines(), 1) if needle in row)
    assert f"{path}:{line}: {message}" in done.stderr
