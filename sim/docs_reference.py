"""Generates the field reference of docs/scenarios.md from the pydantic models.

`python -m sim.docs_reference --write` refreshes the generated part of the file; a test fails
when the file and the schema drift apart.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sim.scenario import Scenario

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m sim.docs_reference --write -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def reference() -> str:
    sections = []
    for model, places in _places().items():
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        rows = [
            "| field | type | allowed | default | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, field in model.model_fields.items():
            rows.append(
                f"| `{field.alias or name}` | {_type_name(field.annotation)} | "
                f"{_constraints(field)} | {_default(field)} | "
                f"{(field.description or '').replace('|', '/')} |"
            )
        if model is Scenario:
            used_at = "The top level of a scenario file. "
        else:
            used_at = f"Used at {_joined(places)}. "
        sections.append(f"### {model.__name__}\n\n{used_at}{doc}\n\n" + "\n".join(rows))
    return "\n\n".join(sections) + "\n"


def _places() -> dict[type[BaseModel], list[str]]:
    """Every section model, in the order first met from the top, with every path it is used at
    (a length distribution is a prompt length, an output length, a number of turns...)."""
    places: dict[type[BaseModel], list[str]] = {}
    queue: list[tuple[str, type[BaseModel]]] = [("", Scenario)]
    while queue:
        where, model = queue.pop(0)
        if where in places.setdefault(model, []):
            continue
        places[model].append(where)
        for name, field in model.model_fields.items():
            path = f"{where}.{field.alias or name}{_container(field.annotation)}".lstrip(".")
            queue.extend((path, nested) for nested in _models_in(field.annotation))
    return places


def _joined(places: list[str]) -> str:
    quoted = [f"`{place}`" for place in places]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _constraints(field: FieldInfo) -> str:
    """The allowed column: bounds on the value, the keys of a mapping and bounds on its values
    (or on each item of a list), and the rule of each validator of the field (its docstring)."""
    metadata = [*field.metadata, *_type_bounds(field.annotation)]
    found = [", ".join(_bounds(metadata))]
    keys, items = _keys_and_items(field.annotation)
    if keys:
        found.append("keys " + ", ".join(f"`{key}`" for key in keys))
    if items is not None and (item_bounds := _bounds(_type_bounds(items))):
        found.append(("values " if keys is not None else "each ") + ", ".join(item_bounds))
    found += [
        " ".join(item.func.__doc__.split())
        for item in metadata
        if isinstance(item, AfterValidator) and item.func.__doc__
    ]
    return "; ".join(rule for rule in found if rule) or "any"


def _bounds(metadata: list[Any]) -> list[str]:
    symbols = {
        "ge": ">=",
        "gt": ">",
        "le": "<=",
        "lt": "<",
        "min_length": "length >=",
        "max_length": "length <=",
    }
    return [
        f"{symbol} {getattr(item, name)}"
        for item in metadata
        for name, symbol in symbols.items()
        if getattr(item, name, None) is not None
    ]


def _keys_and_items(annotation: Any) -> tuple[list[Any] | None, Any]:
    """The literal keys of a mapping (else None) and the type of its values or of a list's
    items (else None)."""
    for arg in (annotation, *typing.get_args(annotation)):  # the mapping or list in X | None
        origin = typing.get_origin(arg)
        if origin is dict:
            key, value = typing.get_args(arg)
            return list(typing.get_args(key)) if typing.get_origin(key) is Literal else [], value
        if origin is list:
            return None, typing.get_args(arg)[0]
    return None, None


def _type_bounds(annotation: Any) -> list[Any]:
    """Bounds that a field's type carries itself, as in `PositiveSeconds | None` (not those of its
    items: pydantic lifts the bounds of a plain `Annotated` field into the field's metadata)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [bound for arg in typing.get_args(annotation) for bound in _type_bounds(arg)]
    if origin is typing.Annotated:
        return [
            bound
            for item in typing.get_args(annotation)[1:]
            for bound in (item.metadata if isinstance(item, FieldInfo) else [item])
        ]
    return []


def _container(annotation: Any) -> str:
    """How a path continues into a field's items: `.<name>` for a mapping, `[i]` for a list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or origin in (typing.Union, types.UnionType):
        return next((c for a in typing.get_args(annotation) if (c := _container(a))), "")
    return {dict: ".<name>", list: "[i]"}.get(origin, "")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return f"mapping {_type_name(args[0])} → {_type_name(args[1])}"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any YAML value"
    if isinstance(annotation, type):
        return {"float": "number", "int": "integer", "str": "string", "bool": "boolean"}.get(
            annotation.__name__, f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        )
    return str(annotation)


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    return f"`{value}`" if value is not None else "null"


def check() -> bool:
    text = DOC.read_text()
    return (
        BEGIN in text
        and END in text
        and text.split(BEGIN)[1].split(END)[0].strip() == reference().strip()
    )


def write() -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    DOC.write_text(f"{head}{BEGIN}\n\n{reference()}\n{END}{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        print(reference())
