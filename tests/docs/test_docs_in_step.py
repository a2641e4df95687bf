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
