"""Clients that retry: the backoff law of each jitter kind, the attempt budget, one final
outcome per logical request, sessions abandoned, and bad retry settings refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from helpers import tables_equal
from scipy import stats

from sim.engine import Simulation
from sim.errors import InputError
from sim.replica.replica import Replica
from sim.request import Request
from sim.results.outcomes import logical_outcomes
from sim.rng import unit
from sim.scenario import Scenario
from sim.scenario_loader import parse_scenario
from sim.status import RETRYABLE, STATUS_BUDGET, STATUS_OK, STATUS_RATE_LIMITED, STATUS_SHED

ROOT = Path(__file__).resolve().parents[2]


def _scenario(scenario_retry: dict[str, Any] | None = None, **traffic: Any) -> Scenario:
    """Open-loop traffic at 5/s on a slot model (0.5 s service, 8 slots): never refused by
    the pool itself, so the only refusals are a test's check's."""
    return Scenario.model_validate(
        {
            "name": "retry",
            "seed": 11,
            "duration_s": 200,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {
                        "p": {"max_num_seqs": 8, "perf": {"model": "fixed", "service_s": 0.5}}
                    },
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 5},
                    "prompt_tokens": {"dist": "uniform", "low": 10, "high": 500},
                    "output_tokens": {"dist": "constant", "value": 10},
                    **traffic,
                }
            ],
            **({"retry": scenario_retry} if scenario_retry is not None else {}),
        }
    )


class Refuse:
    """Refuses an attempt with `status(request)` (0: let it pass)."""

    def __init__(self, status: Any) -> None:
        self.status = status

    def admit(self, request: Request, now_s: float) -> int:
        return int(self.status(request))

    def settle(self, request: Request, now_s: float) -> None:
        pass


def _run(scenario: Scenario, status: Any) -> pa.Table:
    sim = Simulation(scenario)
    sim.gateway.checks = [Refuse(status)]
    return sim.run().requests


def _by_logical(table: pa.Table) -> dict[str, np.ndarray]:
    """The table's columns, rows ordered by (logical_id, attempt)."""
    cols = {name: table[name].to_numpy() for name in table.column_names if name != "traffic"}
    order = np.lexsort((cols["attempt"], cols["logical_id"]))
    return {name: values[order] for name, values in cols.items()}


def _mixed(request: Request) -> int:
    """A deterministic mix: 5 attempts in 8 refused, as 429, 503 or 402."""
    u = unit(5, request.request_id)
    return [
        0,
        0,
        STATUS_SHED,
        STATUS_RATE_LIMITED,
        STATUS_SHED,
        0,
        STATUS_RATE_LIMITED,
        STATUS_BUDGET,
    ][int(u * 8)]


def test_every_logical_request_ends_in_one_final_outcome_and_no_attempt_after_the_last() -> None:
    table = _run(_scenario(), _mixed)
    cols = _by_logical(table)
    logical, first = np.unique(cols["logical_id"], return_index=True)
    last = np.r_[first[1:], len(cols["logical_id"])] - 1
    assert (cols["final"].sum()) == logical.size  # exactly one final row each...
    assert cols["final"][last].all()  # ...and it is the last attempt
    attempts = last - first + 1
    assert attempts.max() == 5 and (cols["attempt"][first] == 1).all()
    assert (cols["attempt"][last] == attempts).all()  # numbered 1, 2, ... without gaps
    final_status = cols["status"][last]
    retried = cols["status"][~cols["final"]]
    assert np.isin(retried, list(RETRYABLE)).all()  # only 429 and 503 are retried
    gave_up = np.isin(final_status, list(RETRYABLE))
    assert (attempts[gave_up] == 5).all() and (attempts[final_status == STATUS_BUDGET] >= 1).all()
    assert (cols["request_id"][first] == logical).all()  # logical_id: the first attempt's id
    assert {STATUS_OK, STATUS_BUDGET, STATUS_RATE_LIMITED, STATUS_SHED} <= set(final_status)


def test_same_seed_same_records_and_retries_leave_the_workload_draws_alone() -> None:
    once, again = _run(_scenario(), _mixed), _run(_scenario(), _mixed)
    assert tables_equal(once, again)
    plain = _by_logical(_run(_scenario(), lambda r: 0))
    cols = _by_logical(once)
    firsts = cols["attempt"] == 1
    for name in ("arrival_s", "prompt_tokens"):
        assert np.array_equal(cols[name][firsts], plain[name])


def test_max_attempts_1_turns_retries_off_and_402_is_never_retried() -> None:
    off = _by_logical(_run(_scenario({"max_attempts": 1}), _mixed))
    assert (off["attempt"] == 1).all() and off["final"].all()
    budget = _by_logical(_run(_scenario(), lambda r: STATUS_BUDGET))
    assert (budget["attempt"] == 1).all() and budget["final"].all()


def test_a_source_s_own_retry_replaces_the_scenario_s() -> None:
    scenario = _scenario({"max_attempts": 2}, retry={"max_attempts": 3, "base_s": 0})
    cols = _by_logical(_run(scenario, lambda r: STATUS_SHED))
    assert cols["attempt"].max() == 3


def _gaps(jitter: str, **retry: Any) -> dict[int, np.ndarray]:
    """Waits between attempt k and k + 1 (retry k) when every attempt is refused."""
    config = {"jitter": jitter, "max_attempts": 5, **retry}
    arrivals = {"process": "poisson", "rate_per_s": 20}
    scenario = _scenario(config, max_requests=1500, arrivals=arrivals)
    cols = _by_logical(_run(scenario, lambda r: STATUS_SHED))
    same = cols["logical_id"][1:] == cols["logical_id"][:-1]
    gaps = np.diff(cols["arrival_s"])[same]
    retry_number = cols["attempt"][:-1][same]
    return {k: gaps[retry_number == k] for k in range(1, 5)}


@pytest.mark.parametrize("jitter", ["full", "equal", "none"])
def test_backoff_spacing_follows_the_law(jitter: str) -> None:
    """Wait before retry k: ceiling c_k = min(cap, base x factor^(k-1)); none waits c_k, full
    U(0, c_k), equal c_k/2 + U(0, c_k/2). A Kolmogorov-Smirnov test per retry (1,500 waits,
    fixed seed) at the 0.1% level, and the mean within 4 standard errors of theory."""
    base_s, factor, cap_s = 1.5, 3.0, 20.0
    for k, waits in _gaps(jitter, base_s=base_s, factor=factor, cap_s=cap_s).items():
        assert waits.size == 1500
        ceiling = min(cap_s, base_s * factor ** (k - 1))
        if jitter == "none":
            np.testing.assert_allclose(waits, ceiling, rtol=1e-9)
            continue
        low = 0.0 if jitter == "full" else ceiling / 2
        law = stats.uniform(loc=low, scale=ceiling - low)
        assert stats.kstest(waits, law.cdf).pvalue > 1e-3
        assert abs(waits.mean() - law.mean()) < 4 * law.std() / np.sqrt(waits.size)


def test_decorrelated_backoff_follows_the_law() -> None:
    """AWS's decorrelated jitter: wait_k = min(cap, U(base, 3 x wait_{k-1})), wait_0 = base.
    Uncapped waits, scaled by their own bounds, are U(0, 1)."""
    base_s, cap_s = 1.0, 12.0
    gaps = _gaps("decorrelated", base_s=base_s, cap_s=cap_s)
    previous = np.full(gaps[1].size, base_s)
    scaled = []
    for k in range(1, 5):
        waits = gaps[k]
        high = 3 * previous
        assert (waits >= base_s - 1e-9).all() and (waits <= np.minimum(cap_s, high) + 1e-9).all()
        free = high <= cap_s  # the cap cannot bind: the wait is the uniform itself
        scaled.append((waits[free] - base_s) / (high[free] - base_s))
        previous = waits
    values = np.concatenate(scaled)
    assert values.size > 3000
    assert stats.kstest(values, "uniform").pvalue > 1e-3
    assert np.isclose(gaps[4].max(), cap_s) or gaps[4].max() < cap_s  # the cap binds at most


def test_zero_delay_retries_never_arrive_inside_an_iteration() -> None:
    """base_s 0: a refused attempt is sent again at the instant of its outcome."""
    scenario = Scenario.model_validate(
        {
            **_scenario().model_dump(exclude={"models"}),
            "models": {"m": {"architecture": "llama-3.1-8b", "pools": {"p": {"replicas": 1}}}},
            "retry": {"base_s": 0, "jitter": "none", "max_attempts": 3},
            "duration_s": 20,
        }
    )
    sim = Simulation(scenario)
    inside = [False]
    for pool in sim.pools:
        for replica in pool.replicas:
            assert isinstance(replica, Replica)
            end = replica._on_iteration_end

            def wrapped(version: int, end: Any = end) -> None:
                inside[0] = True
                end(version)
                inside[0] = False

            replica._iteration_end = wrapped

    def refuse_first_two(request: Request) -> int:
        assert not inside[0]
        return STATUS_SHED if request.attempt < 3 else 0

    sim.gateway.checks = [Refuse(refuse_first_two)]
    cols = _by_logical(sim.run().requests)
    assert (cols["status"][cols["attempt"] == 3] == STATUS_OK).all()
    retried = cols["attempt"] > 1
    assert np.array_equal(cols["arrival_s"][retried], cols["arrival_s"][np.roll(retried, -1)])


def _sessions(retry: dict[str, Any]) -> Scenario:
    return _scenario(
        retry,
        sessions={
            "turns": {"dist": "constant", "value": 4},
            "think_time_s": {"dist": "constant", "value_s": 1},
        },
        arrivals={"process": "poisson", "rate_per_s": 1},
    )


def test_a_session_whose_turn_finally_fails_is_abandoned() -> None:
    def third_turn_of_odd_sessions(request: Request) -> int:
        return STATUS_RATE_LIMITED if request.turn == 3 and request.session_id % 2 else 0

    sim = Simulation(_sessions({"max_attempts": 2, "base_s": 0.1}))
    sim.gateway.checks = [Refuse(third_turn_of_odd_sessions)]
    cols = _by_logical(sim.run().requests)
    (source,) = sim.sources
    odd = cols["session_id"] % 2 == 1
    assert cols["turn"][odd].max() == 3 and cols["turn"][~odd].max() == 4  # no turn after
    assert source.abandoned == np.unique(cols["session_id"][odd]).size  # type: ignore[union-attr]
    assert source.completed == np.unique(cols["session_id"][~odd]).size  # type: ignore[union-attr]
    assert (cols["attempt"][odd & (cols["turn"] == 3)] <= 2).all()


@pytest.mark.parametrize(
    ("retry", "field", "says"),
    [
        ("{jitter: half}", "retry.jitter", "must be one of"),
        ("{base_s: -1}", "retry.base_s", "must be >= 0"),
        ("{max_attempts: 0}", "retry.max_attempts", "must be >= 1"),
        ("{jitter: decorrelated, factor: 3}", "retry", "factor` does not apply"),
        ("{retries: 3}", "retry.retries", "unknown field"),
    ],
)
def test_bad_retry_settings_name_file_line_and_field(retry: str, field: str, says: str) -> None:
    text = (ROOT / "scenarios" / "quickstart.yaml").read_text() + f"retry: {retry}\n"
    line = len(text.splitlines())
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml")
    assert str(caught.value).startswith(f"x.yaml:{line}: {field}: ")
    assert says in str(caught.value)


def test_a_bad_retry_exits_2_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text((ROOT / "scenarios" / "quickstart.yaml").read_text() + "retry: {cap_s: -5}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"{path}:{len(path.read_text().splitlines())}: retry.cap_s: must be >= 0" in done.stderr


def test_the_summary_counts_each_logical_request_once_by_its_final_outcome() -> None:
    scenario = _scenario()
    table = _run(scenario, _mixed)
    group = logical_outcomes(table, scenario.warmup_s, scenario.duration_s)["a"]["m"]["standard"]
    cols = _by_logical(table)
    finals = cols["status"][cols["final"]]
    assert group["logical_requests"] == np.unique(cols["logical_id"]).size
    assert group["attempts"] == table.num_rows
    assert group["served"] == (finals == STATUS_OK).sum()
    assert group["gave_up"] == np.isin(finals, list(RETRYABLE)).sum() > 0
    assert group["refused"] == group["final_status"][str(STATUS_BUDGET)] > 0
    assert group["unfinished"] == 0
    assert sum(group["attempts_by_status"].values()) == group["attempts"]
