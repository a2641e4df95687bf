"""The front door: its checks in order, and the one outcome path every attempt takes."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc
import pytest
from helpers import tables_equal

from sim.engine import Simulation
from sim.replica.replica import Replica
from sim.request import Request
from sim.scenario import Scenario
from sim.status import STATUS_BAD_REQUEST, STATUS_OK, STATUS_RATE_LIMITED, STATUS_UNKNOWN_MODEL


def _scenario(step_by_step: bool = False, **traffic: Any) -> Scenario:
    """One replica, Poisson arrivals at 4/s for 30 s: busy but never refused."""
    return Scenario.model_validate(
        {
            "name": "door",
            "seed": 3,
            "duration_s": 30,
            "step_by_step": step_by_step,
            "models": {
                "m": {
                    "architecture": "llama-3.1-8b",
                    "pools": {"p": {"replicas": 2, "kv_capacity_tokens": 20_000}},
                }
            },
            "accounts": [{"name": "a"}],
            "traffic": [
                {
                    "name": "t",
                    "account": "a",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate_per_s": 4},
                    "prompt_tokens": {"dist": "lognormal", "median": 800, "sigma": 1, "max": 8000},
                    "output_tokens": {"dist": "lognormal", "median": 100, "sigma": 1, "max": 900},
                    "tier_mix": {"standard": 0.8, "priority": 0.2},
                    **traffic,
                }
            ],
        }
    )


class Recording:
    """A check that refuses attempts whose id is in `refuse` and logs every call."""

    def __init__(self, name: str, log: list[tuple[str, str, int, int]], refuse: set[int]):
        self.name, self.log, self.refuse = name, log, refuse

    def admit(self, request: Request, now_s: float) -> int:
        self.log.append((self.name, "admit", request.request_id, 0))
        return STATUS_RATE_LIMITED if request.request_id in self.refuse else 0

    def settle(self, request: Request, now_s: float) -> None:
        assert now_s == request.finished_s
        self.log.append((self.name, "settle", request.request_id, request.status))


def test_checks_that_pass_everything_leave_the_records_as_they_were() -> None:
    plain = Simulation(_scenario()).run().requests
    sim = Simulation(_scenario())
    sim.gateway.checks = [*sim.gateway.checks, Recording("a", [], set()), Recording("b", [], set())]
    assert tables_equal(sim.run().requests, plain)
    assert (plain["status"].to_numpy() == STATUS_OK).all()


def test_a_refusal_stops_the_later_checks_and_every_attempt_settles_once() -> None:
    log: list[tuple[str, str, int, int]] = []
    sim = Simulation(_scenario())
    sim.gateway.checks = [Recording("first", log, {3, 7}), Recording("second", log, set())]
    table = sim.run().requests
    status = dict(zip(table["request_id"].to_pylist(), table["status"].to_pylist(), strict=True))
    assert status[3] == status[7] == STATUS_RATE_LIMITED
    assert sorted(status) == list(range(table.num_rows))  # one row per attempt
    admitted = [rid for name, kind, rid, _ in log if name == "second" and kind == "admit"]
    assert 3 not in admitted and 7 not in admitted and len(admitted) == table.num_rows - 2
    for name in ("first", "second"):
        settled = [(rid, st) for n, kind, rid, st in log if n == name and kind == "settle"]
        assert sorted(settled) == sorted(status.items())
    refused = table.filter(pc.equal(table["status"], STATUS_RATE_LIMITED))
    assert refused["finished_s"].equals(refused["arrival_s"])
    assert set(refused["replica"].to_pylist()) == {-1} and set(refused["pool"].to_pylist()) == {"p"}


def test_unknown_model_and_too_long_are_refused_before_the_checks() -> None:
    log: list[tuple[str, str, int, int]] = []
    sim = Simulation(_scenario(max_requests=1))
    sim.gateway.checks = [Recording("only", log, set())]
    heard: list[tuple[int, float]] = []

    def client(request: Request) -> None:
        heard.append((request.status, sim.env.now))

    for i, (model, prompt) in enumerate([("nope", 10), ("m", 19_995), ("m", 19_000)]):
        request = Request(100 + i, "t", "a", model, "standard", 0.0, prompt, 10)
        request.client = client
        sim.gateway.submit(request)
        assert not heard  # outcomes are scheduled, never delivered inside submit
    sim.run()
    assert heard[:2] == [(STATUS_UNKNOWN_MODEL, 0.0), (STATUS_BAD_REQUEST, 0.0)]
    assert heard[2][0] == STATUS_OK
    assert [rid for _, kind, rid, _ in log if kind == "admit"] == [102, 0]


@pytest.mark.parametrize("step_by_step", [False, True])
def test_a_zero_delay_resubmission_never_runs_inside_an_iteration(step_by_step: bool) -> None:
    """Clients that send again the moment they hear back (a zero-delay retry): the outcome comes
    as its own event, so no replica is in the middle of applying an iteration."""
    sim = Simulation(_scenario(step_by_step, max_requests=40, tier_mix={"standard": 1}))
    inside: list[bool] = [False]
    for pool in sim.pools:
        for replica in pool.replicas:
            assert isinstance(replica, Replica)
            end = replica._on_iteration_end

            def wrapped(version: int, end: Any = end) -> None:
                inside[0] = True
                end(version)
                inside[0] = False

            replica._iteration_end = wrapped
    resent: list[int] = []
    submit = sim.gateway.submit

    def again(request: Request) -> None:
        assert not inside[0]
        if request.attempt < 3:
            retry = Request(
                10_000 + len(resent),
                request.traffic,
                request.account,
                request.model,
                request.tier,
                sim.env.now,
                request.prompt_tokens,
                request.output_tokens,
                attempt=request.attempt + 1,
                logical_id=request.logical_id,
            )
            retry.client = again
            resent.append(retry.request_id)
            submit(retry)

    def first(request: Request) -> None:
        request.client = again
        submit(request)

    for source in sim.sources:
        source._client._submit = first  # type: ignore[union-attr]
    table = sim.run().requests
    assert table.num_rows == 40 * 3 and len(resent) == 80
    assert (table["status"].to_numpy() == STATUS_OK).all()
