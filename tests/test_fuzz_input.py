"""No input, however hostile, produces anything but a result (exit 0) or an InputError with a
message (exit 2): Hypothesis mutates the shipped scenarios, writes raw structures and bytes, and
tries --set and --grid values. Runs that validate are simulated, kept tiny: every source stops
after a few requests and the run after a few simulated seconds."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import InputError
from sim.experiments.runner import run_scenario
from sim.experiments.sweep import expand_grid
from sim.scenario_loader import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
DATA = {path: yaml.safe_load(path.read_text()) for path in SHIPPED}
# The clamps that keep an accepted run tiny are not mutated (their bounds have their own tests).
CLAMPED = {"duration_s", "warmup_s", "drain_s", "sample_interval_s"}
CLAMPED |= {"max_requests", "requests", "submit_at_s"}
HOSTILE: list[Any] = [
    None, 0, -1, 1, 2, 0.5, 1e-300, 1e308, -1e308, math.inf, -math.inf, math.nan, 10**30,
    True, "", "x" * 1000, "30m", "1e400s", "../../etc", [], {}, [1, 2], {"a": 1}, [[0, 1]],
]  # fmt: skip
settings_ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples in every CI run
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in CLAMPED:
                found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _clamp(data: Any) -> None:
    """Keep an accepted run tiny: a few seconds, a few requests per source, no plots."""
    if not isinstance(data, dict):
        return
    data["duration_s"], data["warmup_s"], data["drain_s"] = 5, 0, 30
    data.pop("sample_interval_s", None)
    clamps = {"traffic": {"max_requests": 20}, "batch_jobs": {"requests": 20, "submit_at_s": 0}}
    for section, fields in clamps.items():
        entries = data.get(section)
        for source in entries if isinstance(entries, list) else []:
            if isinstance(source, dict):
                source.update(fields)


def _outcome(text: str, source: Path, overrides: tuple[str, ...] = ()) -> None:
    """Exit 0 (the run completes) or exit 2 (an InputError with a message); anything else
    raised fails the test."""
    try:
        scenario = parse_scenario(text, str(source), overrides)
        with tempfile.TemporaryDirectory() as out:
            run_scenario(scenario, Path(out) / "run", plots=False)
    except InputError as error:
        assert str(error).strip()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, str]:
    path = draw(st.sampled_from(SHIPPED))
    data = copy.deepcopy(DATA[path])
    for _ in range(draw(st.integers(1, 3))):
        targets = _paths(data)
        if not targets:
            break
        where = draw(st.sampled_from(targets))
        parent: Any = data
        for part in where[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "replica", "rate", "7"]))] = 1
        else:
            parent[where[-1]] = draw(st.sampled_from(HOSTILE))
    _clamp(data)
    return path, yaml.safe_dump(data, allow_unicode=True)


@settings_
@given(mutated())
def test_mutated_scenarios_run_or_are_refused(case: tuple[Path, str]) -> None:
    path, text = case
    _outcome(text, path)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(json_like)
def test_raw_structures_are_refused_with_a_message(data: Any) -> None:
    _outcome(yaml.safe_dump(data), ROOT / "x.yaml")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_raw_text_and_bytes_are_refused_with_a_message(raw: bytes | str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        if isinstance(raw, bytes):
            path.write_bytes(raw)
        else:
            path.write_text(raw)
        try:
            from sim.scenario_loader import load_scenario

            load_scenario(path)
        except InputError as error:
            assert str(error).strip()


value_text = st.sampled_from(
    ["3", "0", "-1", "1e400", ".inf", ".nan", "[", "{a: ", "!!python/object:os.system x",
     "null", "{}", "[1, 2]", "'30m'", "x" * 200, "10000000000000000000000000000000"]
)  # fmt: skip


@settings_
@given(st.sampled_from(SHIPPED), st.data())
def test_set_and_grid_values_run_or_are_refused(path: Path, data: st.DataObject) -> None:
    base = copy.deepcopy(DATA[path])
    _clamp(base)
    targets = [".".join(map(str, p)) for p in _paths(base)]
    dotted = data.draw(st.sampled_from(targets) | st.sampled_from(["x.y", "models.nope.pools"]))
    value = data.draw(value_text)
    text = yaml.safe_dump(base)
    _outcome(text, path, (f"{dotted}={value}",))
    try:
        points = expand_grid([f"{dotted}={value},{data.draw(value_text)}"])
    except InputError:
        return
    for point in points:
        _outcome(text, path, tuple(f"{p}={v}" for p, v in point.items()))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_scenario_clamped_runs(path: Path) -> None:
    data = copy.deepcopy(DATA[path])
    _clamp(data)
    scenario = parse_scenario(yaml.safe_dump(data), str(path))
    with tempfile.TemporaryDirectory() as out:
        run_scenario(scenario, Path(out) / "run", plots=False)
