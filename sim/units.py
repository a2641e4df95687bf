"""Durations in the YAML: a number of seconds, or a string such as `500ms`, `30s`, `30m`, `2h`,
`1d`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration_s(value: Any) -> Any:
    """Seconds from a number or a duration string; anything else is left for pydantic to reject."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"not a duration: {value!r} (a number of seconds, or e.g. '500ms', '30s', '30m', "
                "'2h', '1d')"
            )
        return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    return value


class _NumberOrDurationString:
    """JSON Schema of a duration: the number schema (with its bounds), or a duration string, so
    that editors accept `duration_s: 30m` as the loader does."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), {"type": "string", "pattern": _DURATION.pattern}]}


# Every duration is at most a billion seconds (about 31 years): beyond that the float clock
# cannot advance by the microseconds an iteration takes, and a run would never end.
MAX_SECONDS = 1_000_000_000

Seconds = Annotated[
    float, Field(le=MAX_SECONDS), BeforeValidator(parse_duration_s), _NumberOrDurationString()
]

# An optional duration carries its bound in its type, ahead of the parsing: a bound given to
# `Field` of `Seconds | None` would reach the JSON Schema as a non-standard `gt` or `ge` keyword
# (pydantic#11576).
PositiveSeconds = Annotated[
    float, Field(gt=0, le=MAX_SECONDS), BeforeValidator(parse_duration_s), _NumberOrDurationString()
]
NonNegativeSeconds = Annotated[
    float, Field(ge=0, le=MAX_SECONDS), BeforeValidator(parse_duration_s), _NumberOrDurationString()
]
