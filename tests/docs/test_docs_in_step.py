"""docs/scenarios.md documents exactly the fields the schema has."""

from __future__ import annotations

from sim.docs_reference import DOC, check, reference
from sim.scenario import Scenario


def test_scenario_reference_matches_schema() -> None:
    assert check(), "docs/scenarios.md is stale: run `python -m sim.docs_reference --write`"


def test_every_schema_field_is_documented() -> None:
    schema = Scenario.model_json_schema(by_alias=True)
    documented = DOC.read_text()
    fields = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        fields.update(definition.get("properties", {}))
    missing = sorted(f for f in fields if f"| `{f}` |" not in documented)
    assert not missing
    assert reference().count("### ") == len(schema.get("$defs", {})) + 1


def _section(model: str) -> str:
    return reference().split(f"### {model}\n\n")[1].split("\n### ")[0]


def test_a_section_used_in_several_places_names_them_all() -> None:
    lognormal = _section("LogNormalLength")
    for place in ("prompt_tokens", "output_tokens", "sessions.turns", "sessions.system_prompt"):
        assert f"`traffic[i].{place}" in lognormal.splitlines()[0]


def test_allowed_shows_keys_item_bounds_and_validator_rules() -> None:
    row = next(r for r in _section("Traffic").splitlines() if r.startswith("| `tier_mix` |"))
    assert "| keys `standard`, `priority`, `batch`; values >= 0; shares sum to 1 |" in row
    row = next(r for r in _section("EmpiricalLength").splitlines() if "`values`" in r)
    assert "| length >= 1, length <= 1000000; each >= 1, <= 10000000 |" in row
    row = next(r for r in _section("TraceConfig").splitlines() if "`end_s`" in r)
    assert "| > 0, <= 1000000000 |" in row  # a bound carried by the type of an optional field


def test_class_names_do_not_leak_into_prose() -> None:
    assert "PoissonArrivals arrivals" not in reference()
    assert "Used at `traffic[i].arrivals`. Poisson arrivals whose rate" in reference()
