"""The provider's economics: fleet cost is GPU-hours x the GPU-hour price, margin is revenue
minus cost, and the run folder's economics.json is the summary's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import slot_scenario

from sim.engine import simulate
from sim.experiments.runner import run_scenario
from sim.results.economics import economics
from sim.results.summary import summarize
from sim.scenario import Scenario


def _priced(gpu_prices: dict[str, float]) -> Scenario:
    """Two replicas of two GPUs each for 100 s (warm-up 10 s), at about half load."""
    data = slot_scenario(4, 10.0, 0.2, 100, seed=3).model_dump(by_alias=True)
    data["models"]["m"]["pools"]["p"] |= {"replicas": 2, "gpus_per_replica": 2}
    data["gpu_prices_usd_per_hour"] = gpu_prices
    return Scenario.model_validate(data)


def test_fleet_cost_is_gpu_hours_times_price_and_margin_is_revenue_minus_cost() -> None:
    scenario = _priced({"h100": 2.5})
    result = simulate(scenario)
    summary = summarize(result.requests, result.timeseries, 10.0, 100.0)
    money = economics(scenario, result.requests, summary)
    (pool,) = money["pools"]
    # 2 replicas x 2 GPUs held for the 90 s measured window: 0.1 GPU-hours at $2.50.
    assert pool["gpu_hours"] == pytest.approx(2 * 2 * 90 / 3600)
    assert pool["cost_usd"] == pytest.approx(0.25)
    req = result.requests
    finished = req["finished_s"].to_numpy()
    served = (req["status"].to_numpy() == 200) & (finished >= 10) & (finished < 100)
    revenue = float(req["cost_usd"].to_numpy()[served].sum())
    assert revenue > 0
    assert pool["revenue_usd"] == pytest.approx(revenue)
    assert pool["margin_usd"] == pytest.approx(revenue - 0.25)
    output = int(req["completion_tokens"].to_numpy()[served].sum())
    assert pool["tokens"]["output"] == output
    assert pool["cost_usd_per_mtok"]["output"] == pytest.approx(0.25 / output * 1e6)
    assert pool["revenue_usd_per_mtok"]["output"] == pytest.approx(revenue / output * 1e6)
    assert pool["cost_usd_per_mtok"]["cached"] is None  # no prefix shared: nothing cached
    for totals in (money["fleet"], money["models"]["m"]):
        assert totals["cost_usd"] == pytest.approx(0.25)
        assert totals["margin_usd"] == pytest.approx(totals["revenue_usd"] - totals["cost_usd"])
        assert totals["utilisation"] == pytest.approx(pool["utilisation"])
    # Offered load 10/s x 0.2 s = 2 busy slots of 2 x 4: a busy fraction near 0.25.
    assert pool["utilisation"] == pytest.approx(0.25, abs=0.08)


def test_prices_default_to_the_catalog_and_a_given_one_overrides_it() -> None:
    catalog = {"a100": 4.0, "h100": 8.0, "h200": 8.0, "b200": 13.0}
    assert _priced({}).gpu_prices_usd_per_hour == catalog
    assert slot_scenario(1, 1.0, 1.0, 10, seed=0).gpu_prices_usd_per_hour == catalog
    prices = _priced({"b200": 10.0}).gpu_prices_usd_per_hour
    assert prices["b200"] == 10.0 and prices["h100"] == 8.0


def test_the_run_folder_holds_economics_json_as_in_the_summary(tmp_path: Path) -> None:
    report = run_scenario(_priced({}), tmp_path / "run", plots=False)
    written = json.loads((report.out_dir / "economics.json").read_text())
    assert written == json.loads((report.out_dir / "summary.json").read_text())["economics"]
    assert np.isclose(written["fleet"]["cost_usd"], 2 * 2 * 90 / 3600 * 8.0)
