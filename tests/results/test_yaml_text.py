"""yaml_text writes YAML that PyYAML reads back as the very data it came from."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.results.yaml_text import yaml_text

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["yes", "no", "on", "null", "~", "1e5", "0x1f", ".inf", "a: b", "- x", "#"])
)
DATA = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), DATA, max_size=5))
def test_reads_back_as_the_same_data(data: dict) -> None:
    assert yaml.safe_load(yaml_text(data)) == data


def test_special_floats_and_exponents_keep_their_type() -> None:
    text = yaml_text({"big": 1e20, "tiny": 1e-7, "up": math.inf, "down": -math.inf})
    assert yaml.safe_load(text) == {"big": 1e20, "tiny": 1e-7, "up": math.inf, "down": -math.inf}
    assert math.isnan(yaml.safe_load(yaml_text({"x": math.nan}))["x"])


def test_flat_collections_are_one_line_nested_ones_are_blocks() -> None:
    text = yaml_text({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": "f"}, {"g": {"h": None}}]})
    assert text == "a:\n  b: 1\n  c: [1, 2]\nd:\n- {e: f}\n- g: {h: null}\n"


def test_a_key_too_long_for_yaml_is_left_to_pyyaml() -> None:
    data = {"k" * 1100: {"a": [1, {"b": None}]}, "short": "x y"}
    assert yaml.safe_load(yaml_text(data)) == data
