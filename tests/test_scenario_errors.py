"""Bad scenarios: each gives a message naming file, line, field and what is allowed; exit 2."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from sim.errors import InputError
from sim.scenario import Scenario
from sim.scenario_loader import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
GOOD = (ROOT / "scenarios" / "quickstart.yaml").read_text()


def _error(text: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "x.yaml")
    return str(caught.value)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_quickstart_is_valid() -> None:
    scenario = parse_scenario(GOOD, "quickstart.yaml")
    assert scenario.models["llama-8b"].pools["standard"].replicas == 4
    assert scenario.duration_s == 1800 and scenario.warmup_s == 120


def test_out_of_range_names_file_line_path_and_bound() -> None:
    text = GOOD.replace("replicas: 4", "replicas: 0")
    line = _line_of(text, "replicas: 0")
    assert _error(text) == (
        f"x.yaml:{line}: models.llama-8b.pools.standard.replicas: must be >= 1, got 0"
    )


def test_unknown_key_suggests_the_close_one() -> None:
    text = GOOD.replace("replicas: 4", "replica: 4")
    message = _error(text)
    line = _line_of(text, "replica: 4")
    assert message.startswith(
        f"x.yaml:{line}: models.llama-8b.pools.standard.replica: unknown field"
    )
    assert "did you mean 'replicas'?" in message
    assert "max_num_seqs" in message  # lists what is allowed


def test_unknown_routing_policy_lists_the_policies() -> None:
    message = _error(GOOD.replace("policy: least_loaded", "policy: fastest"))
    assert "models.llama-8b.routing" in message
    for name in ("random", "round_robin", "least_loaded", "power_of_two"):
        assert name in message


@pytest.mark.parametrize(
    ("tag", "typo", "where"),
    [
        ("policy", "polcy", "models.llama-8b.routing"),
        ("model", "modle", "models.llama-8b.pools.standard.perf"),
        ("dist", "dst", "traffic.0.prompt_tokens"),
    ],
)
def test_a_misspelt_tag_key_suggests_the_tag(tag: str, typo: str, where: str) -> None:
    text = GOOD.replace(f"{{{tag}: ", f"{{{typo}: ", 1)
    line = _line_of(text, f"{{{typo}: ")
    assert _error(text) == f"x.yaml:{line}: {where}: unknown field {typo!r} (did you mean {tag!r}?)"


def test_a_missing_tag_lists_its_values() -> None:
    message = _error(GOOD.replace("{dist: lognormal, median: 1000", "{median: 1000"))
    assert message.endswith(
        "traffic.0.prompt_tokens: needs the field 'dist': "
        "one of 'lognormal', 'normal', 'constant', 'uniform', 'empirical'"
    )


def test_unknown_distribution_and_process() -> None:
    assert "'lognormal'" in _error(
        GOOD.replace("dist: lognormal, median: 1000", "dist: zipf, median: 1000")
    )
    assert "'poisson'" in _error(GOOD.replace("process: profile", "process: hawkes"))


def test_unknown_gpu_and_architecture_list_the_catalog() -> None:
    message = _error(GOOD.replace("gpu: h100", "gpu: h800"))
    assert "models.llama-8b.pools.standard.gpu: unknown gpu 'h800'" in message
    assert "'a100'" in message and "'b200'" in message
    assert "unknown architecture 'llama-9b'" in _error(GOOD.replace("llama-3.1-8b", "llama-9b"))


def test_gpu_prices_name_catalog_gpus_and_are_positive() -> None:
    text = GOOD.replace("seed: 42", "seed: 42\ngpu_prices_usd_per_hour: {h800: 5}")
    message = _error(text)
    line = _line_of(text, "gpu_prices_usd_per_hour")
    assert f"x.yaml:{line}: gpu_prices_usd_per_hour.h800: unknown gpu 'h800'" in message
    text = GOOD.replace("seed: 42", "seed: 42\ngpu_prices_usd_per_hour: {h100: 0}")
    assert "gpu_prices_usd_per_hour.h100: must be > 0" in _error(text)


def test_bad_duration_string() -> None:
    text = GOOD.replace("duration_s: 30m", "duration_s: 30 minutes")
    line = _line_of(text, "duration_s:")
    message = _error(text)
    assert message.startswith(f"x.yaml:{line}: duration_s: not a duration: '30 minutes'")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _duration_named_fields() -> dict[str, FieldInfo]:
    """Every field of the scenario whose name ends in `_s` (a rate `_per_s` is not a duration)."""
    found: dict[str, FieldInfo] = {}
    queue, seen = [Scenario], set()
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if name.endswith("_s") and not name.endswith("_per_s"):
                found[f"{model.__name__}.{name}"] = field
            queue.extend(_models_in(field.annotation))
    return found


def test_every_duration_field_takes_a_duration_string() -> None:
    """docs/scenarios.md: every `_s` number accepts '1500ms'; the two others are named here."""
    not_numbers = {
        "SessionConfig.think_time_s": "a distribution of durations (its own `_s` fields count)",
        "TraceColumns.arrival_s": "the name of a CSV column",
    }
    fields = _duration_named_fields()
    assert set(not_numbers) <= set(fields)
    assert len(fields) > 15  # the walk reached the nested sections
    for where, field in fields.items():
        if where not in not_numbers:
            adapter = TypeAdapter(Annotated[field.annotation, field])
            assert adapter.validate_python("1500ms") == 1.5, where


def test_perf_durations_take_duration_strings() -> None:
    for perf, field, seconds in (
        ("{model: fixed, service_s: 1500ms}", "service_s", 1.5),
        ("{model: exponential, mean_service_s: 2s}", "mean_service_s", 2.0),
        ("{model: roofline, overhead_s: 5ms}", "overhead_s", 0.005),
    ):
        text = GOOD.replace("perf: {model: roofline}", f"perf: {perf}")
        scenario = parse_scenario(text, "x.yaml")
        assert getattr(scenario.models["llama-8b"].pools["standard"].perf, field) == seconds
    text = GOOD.replace("perf: {model: roofline}", "perf: {model: roofline, overhead_s: -1}")
    assert "perf.overhead_s: must be >= 0.0, got -1" in _error(text)


def test_cross_field_checks() -> None:
    text = GOOD.replace("priority: 0.1", "priority: 0.3")
    assert _error(text) == (
        f"x.yaml:{_line_of(text, 'tier_mix:')}: traffic.0.tier_mix: "
        "shares must sum to 1, they sum to 1.2"
    )
    assert "warmup_s (1800) must be shorter than duration_s" in _error(
        GOOD.replace("warmup_s: 2m", "warmup_s: 30m")
    )
    message = _error(GOOD.replace("account: acme", "account: umbrella"))
    assert "traffic.0.account: unknown account 'umbrella'; allowed: 'acme'" in message


def test_missing_field_and_wrong_type() -> None:
    text = GOOD.replace("    architecture: llama-3.1-8b\n", "")
    assert "models.llama-8b.architecture: is required" in _error(text)
    assert "must be a whole number, got 'four'" in _error(
        GOOD.replace("replicas: 4", "replicas: four")
    )


def test_yaml_syntax_and_duplicate_keys() -> None:
    assert _error(GOOD.replace("seed: 42", "seed: [42")).startswith("x.yaml:")
    text = GOOD.replace("seed: 42", "seed: 42\nseed: 43")
    assert f"x.yaml:{_line_of(text, 'seed: 43')}: seed: duplicate key" in _error(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the scenario"):
        load_scenario(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("replicas: 4", "replicas: -2"), "replicas: must be >= 1"),
        (("replicas: 4", "replicsa: 4"), "did you mean 'replicas'?"),
    ],
)
def test_cli_exits_2_and_writes_nothing(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(GOOD.replace(*edit))
    out = tmp_path / "out"
    for command in (["run", str(scenario), "--out", str(out)], ["validate", str(scenario)]):
        done = subprocess.run(
            [sys.executable, "-m", "sim", *command], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert str(scenario) in done.stderr
        assert "Traceback" not in done.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [scenario]


def test_an_overridden_value_is_validated_and_named() -> None:
    with pytest.raises(InputError) as caught:
        parse_scenario(GOOD, "x.yaml", ["seed=-1"])
    line = _line_of(GOOD, "seed: 42")
    assert str(caught.value) == f"x.yaml:{line}: seed: must be >= 0, got -1 (overridden: seed=-1)"
    with pytest.raises(InputError, match=r"routing: .* \(overridden: models.llama-8b.routing="):
        parse_scenario(GOOD, "x.yaml", ["models.llama-8b.routing={policy: fastest}"])


@pytest.mark.parametrize("override", ["duration_s=[1", "models.llama-8b={pools: {"])
def test_an_override_that_is_not_yaml_names_the_override(override: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_scenario(GOOD, "x.yaml", [override])
    assert str(caught.value).startswith(f"--set {override!r}: the value ")
    assert "is not valid YAML" in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--seed", "-1"], "seed: must be >= 0, got -1 (overridden: seed=-1)"),
        (["--set", "duration_s=[1"], "--set 'duration_s=[1': the value '[1' is not valid YAML"),
    ],
)
def test_cli_bad_overrides_exit_2_and_write_nothing(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    command = ["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", "out", *flags]
    done = subprocess.run(
        [sys.executable, "-m", "sim", *command], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_a_model_that_does_not_fit_names_the_pool() -> None:
    text = GOOD.replace("architecture: llama-3.1-8b", "architecture: llama-3.1-70b")
    message = _error(text)
    line = _line_of(text, "gpus_per_replica: 1")
    assert message.startswith(f"x.yaml:{line}: models.llama-8b.pools.standard.gpus_per_replica:")
    assert "does not fit on 1 x h100" in message
    assert parse_scenario(text.replace("gpus_per_replica: 1", "gpus_per_replica: 4"), "x.yaml")
