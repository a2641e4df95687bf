"""Fast variants (`fast_of`): input errors, prices and a bill by hand, their own rate limits,
and a Fast pool without speculation equal to a plain pool record for record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import columns_equal

from sim.engine import simulate
from sim.errors import InputError
from sim.gateway.billing import list_prices
from sim.results.bill import bill
from sim.results.store import resolved_yaml
from sim.scenario import Scenario
from sim.scenario_loader import parse_scenario
from sim.status import STATUS_OK, STATUS_RATE_LIMITED

ROOT = Path(__file__).resolve().parents[1]
GOOD = (ROOT / "scenarios" / "quickstart.yaml").read_text()
FAST_MODEL = """\
  llama-8b-fast:
    architecture: llama-3.1-8b
    fast_of: llama-8b
    pools:
      fast: {gpu: h100, replicas: 1, max_num_seqs: 16}
rate_limits:"""
FAST_TRAFFIC = """
  - name: quick
    account: acme
    model: llama-8b-fast
    arrivals: {process: poisson, rate_per_s: 1}
    prompt_tokens: {dist: constant, value: 100}
    output_tokens: {dist: constant, value: 100}
"""
OUTPUT = "output_tokens: {dist: constant, value: 100}\n"
WITH_FAST = GOOD.replace("rate_limits:", FAST_MODEL, 1) + FAST_TRAFFIC


def _error(text: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml")
    return str(caught.value)


def _line_of(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text.count("\n", 0, text.index(needle, start)) + 1


def test_a_fast_variant_loads_and_its_resolved_file_reloads() -> None:
    scenario = parse_scenario(WITH_FAST, "x.yaml")
    fast = scenario.models["llama-8b-fast"]
    assert fast.is_fast and fast.tier_pools() == {"fast": "fast"}
    text = resolved_yaml(scenario)  # its traffic's tier_mix (which cannot say fast) left out
    assert resolved_yaml(parse_scenario(text, "scenario.resolved.yaml")) == text


@pytest.mark.parametrize(
    ("edit", "needle", "field", "says"),
    [
        (
            ("fast_of: llama-8b", "fast_of: llama-9b"),
            "fast_of: llama-9b",
            "models.llama-8b-fast.fast_of",
            "unknown model 'llama-9b'; allowed: 'llama-8b'",
        ),
        (
            ("fast_of: llama-8b", "fast_of: llama-8b-fast"),
            "fast_of: llama-8b-fast",
            "models.llama-8b-fast.fast_of",
            "a model id cannot be a Fast variant of itself",
        ),
        (
            (
                "    architecture: llama-3.1-8b\n    fast_of",
                "    architecture: qwen2.5-32b\n    fast_of",
            ),
            "architecture: qwen2.5-32b",
            "models.llama-8b-fast.architecture",
            "a Fast variant serves the weights of the model it names ('llama-8b', architecture "
            "'llama-3.1-8b'): its architecture must be the same, got 'qwen2.5-32b'",
        ),
        (
            ("fast: {gpu: h100,", "fast: {tiers: [priority], gpu: h100,"),
            "fast: {tiers",
            "models.llama-8b-fast.pools.fast.tiers",
            "a Fast variant's pool serves its own requests only (tier fast)",
        ),
        (
            ("max_num_seqs: 16}", "max_num_seqs: 16}\n      spare: {gpu: h100}"),
            "spare:",
            "models.llama-8b-fast.pools.spare",
            "no tier reaches this pool: a Fast variant's requests (tier fast) all go to its "
            "first pool, 'fast'",
        ),
        (
            ("        perf: {model: roofline}", "        perf: {model: roofline}\n      more: {}"),
            "more: {}",
            "models.llama-8b.pools.more",
            "no tier reaches this pool: each tier it lists goes to an earlier pool (standard to "
            "'standard', priority to 'standard', batch to 'standard')",
        ),
        (
            (OUTPUT, OUTPUT + "    tier_mix: {standard: 0.5, batch: 0.5}\n"),
            "tier_mix: {standard: 0.5",
            "traffic.2.tier_mix",
            "model 'llama-8b-fast' is a Fast variant: its requests all have tier fast, so a "
            "tier_mix naming standard, batch cannot apply",
        ),
    ],
)
def test_fast_input_errors_name_file_line_and_field(
    edit: tuple[str, str], needle: str, field: str, says: str
) -> None:
    text = WITH_FAST.replace(*edit)
    assert text != WITH_FAST
    message = _error(text)
    assert f"x.yaml:{_line_of(text, needle)}: {field}: {says}" in message, message


def test_a_chain_of_fast_variants_is_refused() -> None:
    chain = FAST_MODEL.replace("llama-8b-fast:", "llama-8b-faster:").replace(
        "fast_of: llama-8b", "fast_of: llama-8b-fast"
    )
    text = WITH_FAST.replace("rate_limits:", chain, 1)
    message = _error(text)
    line = _line_of(text, "fast_of: llama-8b-fast")
    assert (
        f"x.yaml:{line}: models.llama-8b-faster.fast_of: model 'llama-8b-fast' is itself a "
        "Fast variant (of 'llama-8b'): name the model whose weights both serve, 'llama-8b'"
    ) in message


def test_the_old_fast_flag_points_to_fast_of() -> None:
    message = _error(WITH_FAST.replace("fast_of: llama-8b", "fast: true"))
    assert "models.llama-8b-fast.fast: unknown field; did you mean 'fast_of'?" in message


def test_cli_refuses_a_fast_tier_mix_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(WITH_FAST.replace(OUTPUT, OUTPUT + "    tier_mix: {priority: 1}\n"))
    done = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr and "traffic.2.tier_mix: model 'llama-8b-fast'" in done.stderr


def _pair(fast_pool_perf: dict[str, Any] | None = None, **traffic: Any) -> dict[str, Any]:
    """Model m (Kimi-K2-class list prices) and its Fast variant m-fast, one pool each."""
    pool = {"gpu": "h100", "replicas": 2, "max_num_seqs": 32, "kv_capacity_tokens": 200_000}
    return {
        "name": "pair",
        "duration_s": 60,
        "models": {
            "m": {
                "architecture": "llama-3.1-8b",
                "pools": {"p": pool},
                # PLATFORM.md, Billing: a Kimi-K2-class MoE, USD per million tokens.
                "prices": {
                    "input_usd_per_mtok": 0.95,
                    "cached_input_usd_per_mtok": 0.16,
                    "output_usd_per_mtok": 4.00,
                },
            },
            "m-fast": {
                "architecture": "llama-3.1-8b",
                "fast_of": "m",
                "pools": {"p": dict(pool, perf=fast_pool_perf or {"model": "roofline"})},
            },
        },
        "accounts": [{"name": "a"}],
        "traffic": [
            {
                "name": "t",
                "account": "a",
                "model": "m-fast",
                "arrivals": {"process": "poisson", "rate_per_s": 4},
                "prompt_tokens": {"dist": "constant", "value": 1000},
                "output_tokens": {"dist": "constant", "value": 250},
                **traffic,
            }
        ],
    }


def test_a_fast_bill_by_hand() -> None:
    """Fast list prices default to 2 x its base model's: $1.90 input, $0.32 cached, $8.00
    output per million. 200 requests of 1,000 uncached prompt tokens (open-loop prompts share
    nothing) and 250 generated: 200 x (1000 x 1.90 + 250 x 8.00) / 1e6 = $0.78."""
    scenario = Scenario.model_validate(_pair(max_requests=200))
    prices = list_prices(scenario, "m-fast")
    assert (
        prices.input_usd_per_mtok,
        prices.cached_input_usd_per_mtok,
        prices.output_usd_per_mtok,
    ) == pytest.approx((1.90, 0.32, 8.00))
    requests = simulate(scenario).requests
    billed = bill(requests).to_pylist()
    assert [(r["model"], r["tier"]) for r in billed] == [("m-fast", "fast")]
    assert billed[0]["requests"] == 200 and billed[0]["cached_input_tokens"] == 0
    assert billed[0]["input_tokens"] == 200_000 and billed[0]["output_tokens"] == 50_000
    assert round(sum(r["cost_usd"] for r in billed), 2) == 0.78
    assert sum(r["cost_usd"] for r in billed) == pytest.approx(0.78, abs=1e-12)


def test_a_fast_variant_has_its_own_rate_limits() -> None:
    """Limits are kept per (account, model id): the base model's traffic, over its generated
    limit, gets 429s; the same account's Fast traffic, under the same limit, gets none."""
    data = _pair(max_requests=30, arrivals={"process": "poisson", "rate_per_s": 0.5})
    data["traffic"].append(
        dict(data["traffic"][0], name="base", model="m", max_requests=None)
        | {"arrivals": {"process": "poisson", "rate_per_s": 4}}
    )
    limits = {"policy": "fixed", "prompt_tpm": 1e9, "uncached_prompt_tpm": 1e9}
    data["rate_limits"] = {"limits": limits | {"generated_tpm": 12_000}}  # 200 tokens/s
    requests = simulate(Scenario.model_validate(data)).requests
    model = requests["model"].to_numpy(zero_copy_only=False)
    status = requests["status"].to_numpy()
    assert (status[model == "m"] == STATUS_RATE_LIMITED).sum() > 50
    assert set(status[model == "m-fast"]) == {STATUS_OK}


def test_a_fast_pool_without_drafts_equals_a_plain_pool_record_for_record() -> None:
    """`draft_tokens: 0` turns speculation off: the Fast variant's pool then serves its
    traffic exactly as the same pool of the base model does, at twice the price."""
    fast = Scenario.model_validate(
        _pair({"model": "roofline", "draft_tokens": 0, "acceptance_rate": 0.9})
    )
    data = _pair()
    data["traffic"][0]["model"] = "m"
    plain = Scenario.model_validate(data)
    a = simulate(fast).requests.sort_by("request_id")
    b = simulate(plain).requests.sort_by("request_id")
    assert a.num_rows == b.num_rows > 200
    for column in a.column_names:
        if column in ("model", "tier", "cost_usd"):
            continue
        assert columns_equal(a[column], b[column]), column
    assert set(a["tier"].to_pylist()) == {"fast"} and set(b["tier"].to_pylist()) == {"standard"}
    np.testing.assert_allclose(a["cost_usd"].to_numpy(), 2 * b["cost_usd"].to_numpy())
