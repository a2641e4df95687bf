"""Batch jobs (PLATFORM.md, Traffic tiers; docs/economics.md, Batch): submitted at once, served
on spare capacity with no rate limit, billed at half of list price, expiring with the rows
already finished kept; bad input names its file, line and field."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim.engine import simulate
from sim.errors import InputError
from sim.gateway.billing import price_book
from sim.scenario_loader import parse_scenario
from sim.status import STATUS_EXPIRED, STATUS_OK

SCENARIO = """name: batch
seed: 3
duration_s: 120
drain_s: 7200
models:
  m:
    architecture: llama-3.1-8b
    prices: {input_usd_per_mtok: 0.9, cached_input_usd_per_mtok: 0.3, output_usd_per_mtok: 1.7}
    pools:
      p:
        gpu: h100
        replicas: 1
        max_num_seqs: 32
        batch_max_share: 0.5
rate_limits: {}
accounts:
  - name: acme
    limits: {policy: fixed, prompt_tpm: 1000, uncached_prompt_tpm: 1000, generated_tpm: 100}
traffic:
  - name: chat
    account: acme
    model: m
    arrivals: {process: poisson, rate_per_s: 0.2}
    prompt_tokens: {dist: constant, value: 100}
    output_tokens: {dist: constant, value: 20}
batch_jobs:
  - name: nightly
    account: acme
    model: m
    submit_at_s: 10
    requests: 400
    prompt_tokens: {dist: constant, value: 1200}
    output_tokens: {dist: constant, value: 300}
"""


def _jobs(text: str = SCENARIO, *overrides: str) -> tuple[dict, pa.Table]:
    result = simulate(parse_scenario(text, "b.yaml", overrides))
    return result.jobs.to_pylist()[0], result.requests


def test_a_job_under_light_load_finishes_unlimited_and_is_billed_by_hand() -> None:
    """400 rows of 1,200 + 300 tokens at half of $0.90 / $1.70 per million: $0.348 each... to
    the cent; the account's limits (100 generated tokens a minute) do not apply to Batch."""
    job, requests = _jobs()
    assert job["status"] == "completed" and job["rows_done"] == 400
    assert job["rows_expired"] == job["rows_failed"] == job["rows_open"] == 0
    assert job["submitted_s"] == 10 and job["started_s"] == 10
    rows = requests.filter(requests["traffic"].to_numpy(zero_copy_only=False) == "nightly")
    assert (rows["status"].to_numpy() == STATUS_OK).all()
    assert job["finished_s"] == pytest.approx(rows["finished_s"].to_numpy().max())
    by_hand = 400 * 0.5 * (1200 * 0.9 + 300 * 1.7) / 1e6  # $0.318
    assert round(job["cost_usd"], 2) == round(by_hand, 2) == 0.32
    assert job["cost_usd"] == pytest.approx(by_hand, rel=1e-12)
    assert rows["tier"].to_pylist() == ["batch"] * 400


def test_the_cached_discount_applies_on_top_of_the_batch_price() -> None:
    book = price_book(parse_scenario(SCENARIO, "b.yaml"))
    # 1,000 prompt tokens of which 600 cached, 200 generated: half of list on each kind.
    by_hand = 0.5 * (400 * 0.9 + 600 * 0.3 + 200 * 1.7) / 1e6
    assert book.cost_usd("m", "batch", 1000, 600, 200) == pytest.approx(by_hand, rel=1e-12)
    assert book.cost_usd("m", "batch", 1000, 600, 200) * 2 == pytest.approx(
        book.cost_usd("m", "standard", 1000, 600, 200), rel=1e-12
    )


def test_expiry_keeps_the_finished_rows_and_marks_the_rest() -> None:
    job, requests = _jobs(SCENARIO, "batch_jobs.0.expire_after_s=60")
    rows = requests.filter(requests["traffic"].to_numpy(zero_copy_only=False) == "nightly")
    status, finished = rows["status"].to_numpy(), rows["finished_s"].to_numpy()
    done, expired = status == STATUS_OK, status == STATUS_EXPIRED
    assert (done | expired).all() and done.sum() > 0 and expired.sum() > 0
    assert job["status"] == "expired" and job["expired_s"] == 70 and math.isnan(job["finished_s"])
    assert job["rows_done"] == done.sum() and job["rows_expired"] == expired.sum()
    assert (finished[done] <= 70).all()  # served before the expiry
    # Waiting rows end at the expiry; running ones when their iteration in flight ends.
    assert (finished[expired] >= 70).all() and (finished[expired] < 70.5).all()
    assert (rows["cost_usd"].to_numpy()[expired] == 0).all()
    assert job["cost_usd"] == pytest.approx(rows["cost_usd"].to_numpy()[done].sum())
    assert np.isnan(
        rows["ttft_s"].to_numpy()[expired & np.isnan(rows["admitted_s"].to_numpy())]
    ).all()


@pytest.mark.parametrize(
    ("line", "bad", "field", "named"),
    [
        ("    model: m\n    sub", "    model: nope\n    sub", "batch_jobs.0.model", "model: nope"),
        (
            "    account: acme\n    model: m\n    sub",
            "    account: no\n    model: m\n    sub",
            "batch_jobs.0.account",
            "account: no",
        ),
        ("    requests: 400", "    requests: -5", "batch_jobs.0.requests", "requests: -5"),
        ("  - name: nightly", "  - name: chat", "batch_jobs.0.name", "name: chat"),
        ("share: 0.5", "share: 0", "models.m.pools.p.batch_max_share", "share: 0"),
        ("share: 0.5", "share: 1.5", "models.m.pools.p.batch_max_share", "share: 1.5"),
        ("share: 0.5", "share: .nan", "models.m.pools.p.batch_max_share", "share: .nan"),
        (
            "batch_max_share: 0.5",
            "tiers: [standard]",
            "batch_jobs.0.model",
            "    model: m\n    sub",
        ),
    ],
)
def test_bad_input_names_file_line_and_field(line: str, bad: str, field: str, named: str) -> None:
    assert SCENARIO.count(line) == 1
    text = SCENARIO.replace(line, bad)
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "b.yaml")
    assert caught.value.exit_code == 2
    at = text[: text.rindex(named)].count("\n") + 1
    assert f"b.yaml:{at}: {field}: " in str(caught.value), str(caught.value)


def test_a_job_submitted_after_the_arrivals_is_refused() -> None:
    with pytest.raises(InputError, match="submit_at_s"):
        parse_scenario(SCENARIO.replace("submit_at_s: 10", "submit_at_s: 500"), "b.yaml")


MODERATE = """name: moderate
seed: 11
duration_s: 600
warmup_s: 60
models:
  m:
    architecture: llama-3.1-8b
    pools:
      p: {gpu: h100, replicas: 2}
accounts: [{name: acme, spend_tier: unlimited}]
traffic:
  - name: chat
    account: acme
    model: m
    arrivals: {process: poisson, rate_per_s: 10}
    prompt_tokens: {dist: lognormal, median: 1000, sigma: 0.8, max: 32000}
    output_tokens: {dist: lognormal, median: 200, sigma: 0.6, max: 4096}
batch_jobs:
  - name: backfill
    account: acme
    model: m
    submit_at_s: 30
    requests: 3000
    prompt_tokens: {dist: lognormal, median: 1000, sigma: 0.8, max: 32000}
    output_tokens: {dist: lognormal, median: 200, sigma: 0.6, max: 4096}
"""


def _interactive(table: pa.Table) -> dict[str, np.ndarray]:
    """The measured Standard rows' columns."""
    tier = table["tier"].to_numpy(zero_copy_only=False)
    arrival = table["arrival_s"].to_numpy()
    rows = (tier == "standard") & (arrival >= 60) & (arrival < 600)
    names = ("arrival_s", "prompt_tokens", "completion_tokens", "ttft_s", "tpot_s")
    return {name: table[name].to_numpy()[rows] for name in names}


def test_a_large_batch_job_leaves_interactive_latency_within_5_percent() -> None:
    """Two H100 replicas at moderate load (10 requests/s, queueing p99 under 0.1 s), the same
    interactive requests (common random numbers) with and without a 3,000-row job that keeps
    Batch waiting the whole run: TTFT and TPOT p50 and p99 move by less than 5%. The default
    batch_max_slowdown (2%) is what bounds it: without it, Batch rides in every iteration and
    TPOT p50 rises by more than 4%."""
    alone = _interactive(simulate(parse_scenario(MODERATE, "m.yaml", ["batch_jobs=[]"])).requests)
    result = simulate(parse_scenario(MODERATE, "m.yaml"))
    mixed = _interactive(result.requests)
    for column in ("arrival_s", "prompt_tokens", "completion_tokens"):
        assert np.array_equal(np.sort(alone[column]), np.sort(mixed[column]))
    for column in ("ttft_s", "tpot_s"):
        for q in (0.5, 0.99):
            before = np.nanquantile(alone[column], q)
            after = np.nanquantile(mixed[column], q)
            assert after == pytest.approx(before, rel=0.05), (column, q, before, after)
    job = result.jobs.to_pylist()[0]
    assert job["status"] == "completed" and job["rows_done"] == 3000  # in the drain
    unlimited = simulate(
        parse_scenario(MODERATE, "m.yaml", ["models.m.pools.p.batch_max_slowdown=100"])
    )
    tpot = np.nanquantile(_interactive(unlimited.requests)["tpot_s"], 0.5)
    assert tpot > 1.04 * np.nanquantile(alone["tpot_s"], 0.5) > np.nanquantile(mixed["tpot_s"], 0.5)


def test_the_run_folder_holds_jobs_parquet_and_the_cli_prints_the_jobs(tmp_path: Path) -> None:
    scenario = tmp_path / "b.yaml"
    scenario.write_text(SCENARIO.replace("requests: 400", "requests: 40"))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(scenario), "--out", str(out), "--no-plots"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    (job,) = pq.read_table(out / "jobs.parquet").to_pylist()
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["jobs"]["jobs"]
    assert row["rows_done"] == job["rows_done"] == summary["jobs"]["total"]["rows_done"] == 40
    assert row["turnaround_s"] == pytest.approx(job["finished_s"] - 10)
    assert row["expired_s"] is None and math.isnan(job["expired_s"])
    assert "batch jobs" in done.stdout
    line = next(line for line in done.stdout.splitlines() if "nightly" in line)
    assert "completed" in line and f"{job['cost_usd']:,.2f}" in line
