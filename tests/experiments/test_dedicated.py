"""`capsim dedicated`: the fewest dedicated replicas and the break-even, against Erlang C."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from test_queueing_theory import fewest_servers
from typer.testing import CliRunner

from sim.cli import app
from sim.errors import InputError
from sim.experiments.dedicated import account_alone, scaled_traffic
from sim.report.html import write_report
from sim.scenario_loader import load_scenario

TARGET_WAIT_S = 0.15
SERVICE_S = 1.0
RATE_PER_S = 1.0  # the account's requests at the scenario's traffic
OUTPUT_USD_PER_MTOK = 10.0  # 1,000 output tokens a request: $0.01 a request, $36 an hour
REQUEST_USD = 1000 * OUTPUT_USD_PER_MTOK / 1e6
H100_USD_PER_HOUR = 8.0


def _scenario(tmp_path: Path) -> Path:
    """Account `a` shares a pool of 1-slot replicas with account `b`; service is exponential,
    so `a` alone on its own replicas is M/M/c up to the routing (join the shortest queue)."""
    source = {
        "model": "m",
        "prompt_tokens": {"dist": "constant", "value": 10},
        "output_tokens": {"dist": "constant", "value": 1000},
    }
    data = {
        "name": "mmc-dedicated",
        "seed": 3,
        "duration_s": 4000,
        "warmup_s": 200,
        "models": {
            "m": {
                "architecture": "llama-3.1-8b",
                "prices": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": OUTPUT_USD_PER_MTOK},
                "pools": {
                    "p": {
                        "gpu": "h100",
                        "replicas": 6,
                        "max_num_seqs": 1,
                        "perf": {"model": "exponential", "mean_service_s": SERVICE_S},
                    }
                },
            }
        },
        "gpu_prices_usd_per_hour": {"h100": H100_USD_PER_HOUR},
        "accounts": [{"name": "a", "spend_tier": "unlimited"}, {"name": "b"}],
        "traffic": [
            {
                "name": "chat-a",
                "account": "a",
                "arrivals": {"process": "poisson", "rate_per_s": RATE_PER_S},
                **source,
            },
            {
                "name": "chat-b",
                "account": "b",
                "arrivals": {"process": "poisson", "rate_per_s": 2.0},
                **source,
            },
        ],
        "variants": {"fewer": {"models.m.pools.p.replicas": 5}},
    }
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _erlang_answer(rate_per_s: float) -> int:
    return fewest_servers(rate_per_s, SERVICE_S, TARGET_WAIT_S)


def _capsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, check=False
    )


def test_dedicated_finds_the_erlang_c_answer_and_the_break_even(tmp_path: Path) -> None:
    # Erlang C for a mean wait <= 0.15 s: at 1 request/s 3 servers (2 wait 0.33 s, 3 wait
    # 0.045 s: room for joining the shortest queue, which waits longer than one shared queue).
    # Serverless costs $36/h per unit of traffic, a replica $8/h: the break-even search starts
    # at 8/36 = 0.222 (0.22 requests/s: 2 servers, as 1 waits 0.29 s), so steps to 16/36 =
    # 0.444 (2 servers again, as 1 waits 0.8 s): there $16/h both ways.
    assert _erlang_answer(RATE_PER_S) == 3
    assert [_erlang_answer(k * RATE_PER_S) for k in (8 / 36, 16 / 36)] == [2, 2]
    path, out = _scenario(tmp_path), tmp_path / "out"
    done = _capsim(
        "dedicated", str(path), "--account", "a", "--slo", f"queue_mean_s<={TARGET_WAIT_S}",
        "--traffic", "1", "--max-replicas", "8", "--workers", "1", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "dedicated.json").read_text())
    table = pq.read_table(out / "dedicated.parquet")
    serverless = info["serverless"]["usd_per_hour"]
    # The bill of `a` in the shared run: $0.01 per request served, 1 request/s (Poisson count
    # over 3,800 s: a 2% standard error).
    assert serverless == pytest.approx(RATE_PER_S * 3600 * REQUEST_USD, rel=0.06)
    now = info["at_scenario_traffic"]
    assert now["replicas.m.p"] == _erlang_answer(RATE_PER_S)
    assert now["dedicated_usd_per_month"] == 3 * H100_USD_PER_HOUR * 730
    assert now["cheaper"] == "dedicated" and now["slo.queue_mean_s"] <= TARGET_WAIT_S
    even = info["break_even"]
    assert even["replicas.m.p"] == 2
    assert even["traffic_multiplier"] == pytest.approx(2 * H100_USD_PER_HOUR / serverless, 1e-5)
    assert table["traffic_multiplier"].to_pylist() == pytest.approx(
        [H100_USD_PER_HOUR / serverless, 2 * H100_USD_PER_HOUR / serverless, 1.0], rel=1e-5
    )
    assert table["replicas.m.p"].to_pylist() == [2, 2, 3]
    assert "break-even at x0.44" in done.stdout
    assert (out / "plots" / "serverless_vs_dedicated.png").is_file()
    assert (out / "command.json").is_file()
    page = write_report([out], tmp_path / "report.html").read_text()
    assert "Account a: fewest dedicated replicas" in page and "monthly cost against traffic" in page


def test_the_account_alone_and_its_scaled_traffic(tmp_path: Path) -> None:
    path = _scenario(tmp_path)
    base = load_scenario(path)
    settings, traffic = account_alone(base, "a")
    alone = load_scenario(path, [*settings, *scaled_traffic(traffic, 2.5)])
    assert [t.name for t in alone.traffic] == ["chat-a"]
    assert [a.name for a in alone.accounts] == ["a"] and alone.rate_limits is None
    assert alone.traffic[0].arrivals is not None
    assert alone.traffic[0].arrivals.model_dump()["rate_per_s"] == 2.5 * RATE_PER_S
    assert alone.spend_tiers["unlimited"].monthly_budget_usd is None and not alone.variants
    with pytest.raises(InputError, match=r"--account 'nobody': no such account; .*a, b"):
        account_alone(base, "nobody")


def test_an_unknown_account_exits_2_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _capsim(
        "dedicated", str(_scenario(tmp_path)), "--account", "nobody", "--slo", "queue_mean_s<=1",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 2 and "--account 'nobody': no such account" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--account", "a", "--slo", "queue_mean<=1"], "--slo 'queue_mean<=1'"),
        (["--account", "a", "--slo", "queue_mean_s<=1", "--traffic", "4..1"], "--traffic '4..1'"),
    ],
)
def test_bad_options_are_input_errors_naming_them(
    tmp_path: Path, args: list[str], field: str
) -> None:
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app, ["dedicated", str(_scenario(tmp_path)), *args, "--out", str(out)]
    )
    assert isinstance(done.exception, InputError) and field in str(done.exception)
    assert not out.exists()
