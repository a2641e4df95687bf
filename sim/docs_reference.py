"""Generates the field reference of docs/scenarios.md from the pydantic models.

`python -m sim.docs_reference --write` refreshes the generated part of the file; a test fails
when the file and the schema drift apart.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sim.scenario import Scenario

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m sim.docs_reference --write -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def reference() -> str:
    sections: list[str] = []
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("", Scenario)]
    while queue:
        where, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        title = model.__name__
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        rows = [
            "| field | type | allowed | default | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, field in model.model_fields.items():
            key = field.alias or name
            rows.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_constraints(field)} | "
                f"{_default(field)} | "
                f"{(field.description or '').replace('|', '/')} |"
            )
            for nested in _models_in(field.annotation):
                queue.append((f"{where}.{key}{_container(field.annotation)}".lstrip("."), nested))
        used_at = f"Used at `{where}`. " if where else "The top level of a scenario file. "
        sections.append(f"### {title}\n\n{used_at}{doc}\n\n" + "\n".join(rows))
    return "\n\n".join(sections) + "\n"


def _constraints(field: FieldInfo) -> str:
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >="}
    found = [
        f"{symbol} {getattr(item, name)}"
        for item in [*field.metadata, *_type_bounds(field.annotation)]
        for name, symbol in symbols.items()
        if getattr(item, name, None) is not None
    ]
    return ", ".join(found) or "any"


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
