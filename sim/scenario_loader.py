"""Load a scenario YAML: safe YAML, pydantic validation, errors with file, line and field path.

A message reads `scenarios/x.yaml:14: models.llama-8b.pools.standard.replicas: must be >= 1`.
Unknown keys are errors with a did-you-mean where a valid key is close.
"""

from __future__ import annotations

import copy
import difflib
import json
import reprlib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.errors import InputError
from sim.input_files import SCENARIO_MAX_BYTES, read_text
from sim.scenario import Scenario, cross_reference_errors
from sim.work import absurd_work_errors

Path_ = tuple[Any, ...]
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present
# Aliases let a few hundred bytes stand for billions of nodes (an "alias bomb"); a real scenario,
# even one with a million accounts, expands to a few million.
MAX_EXPANDED_NODES = 20_000_000
_short = reprlib.Repr()  # values quoted in messages: an aliased section can be huge
_short.maxstring = _short.maxother = 60
_short.maxlevel = 2
_shown_value = _short.repr


def load_scenario(path: Path, overrides: Sequence[str] = ()) -> Scenario:
    """The validated scenario in `path`, or InputError listing every problem found.

    `overrides` are `dotted.path=value` strings (the value is YAML) applied before validation.
    """
    text = read_text(path, "scenario", SCENARIO_MAX_BYTES)
    return parse_scenario(text, str(path), overrides)


def parse_scenario(text: str, source: str, overrides: Sequence[str] = ()) -> Scenario:
    try:
        loader = _SafeLoader(text)
        try:
            root = loader.get_single_node()  # one parse: nodes (for line numbers), then data
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise InputError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if root is None or not isinstance(data, dict):
        raise InputError(f"{source}:1: a scenario is a mapping of fields (name, models, ...)")
    expanded = _expanded_nodes(root, {})
    if expanded > MAX_EXPANDED_NODES:
        raise InputError(
            f"{source}: its aliases (*name) expand it to {expanded:.3g} values, more than "
            f"{MAX_EXPANDED_NODES:,}: write the sections out, or alias fewer times"
        )
    if overrides:
        data = copy.deepcopy(data)  # YAML aliases share nodes: an override edits one place
    for override in overrides:
        _apply_override(data, override)
    _resolve_trace_paths(data, source)
    lines: dict[Path_, int] = {}
    duplicates: list[str] = []
    _index_lines(root, (), lines, duplicates, source, set())
    if duplicates:
        raise InputError("\n".join(duplicates))
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        problems = [_located(e, data) for e in error.errors()]
    else:
        problems = cross_reference_errors(scenario) + absurd_work_errors(scenario)
    if problems:
        messages = [
            f"{_where(source, lines, path)}: {_dotted(path)}: {message}"
            f"{_overridden_by(path, overrides)}"
            for path, message in problems
        ]
        raise InputError("\n".join(dict.fromkeys(messages)))
    for name in scenario.variants:
        try:
            parse_scenario(text, source, [*overrides, *variant_overrides(scenario, name)])
        except InputError as error:
            where = _where(source, lines, ("variants", name))
            raise InputError(f"{where}: variants.{name}: {error}") from None
    return scenario


# A variant changes the system, never the workload's seed or the experiment's own shape.
_NOT_IN_VARIANTS = ("seed", "variants", "replications")


def variant_overrides(scenario: Scenario, name: str) -> list[str]:
    """The variant's settings as `--set` strings (JSON values are YAML), ending with `variants={}`:
    a variant's run is a plain scenario. InputError for a path a variant may not set."""
    settings = []
    for path, value in scenario.variants[name].items():
        if path.split(".")[0] in _NOT_IN_VARIANTS:
            raise InputError(
                f"{path}: a variant cannot set {path.split('.')[0]} "
                "(variants share the seeds of their replications: common random numbers)"
            )
        settings.append(f"{path}={json.dumps(value, default=str)}")
    return [*settings, "variants={}"]


def _overridden_by(path: Path_, overrides: Sequence[str]) -> str:
    """Which overrides set the field (or a section holding it): the value is not the file's."""
    dotted = [str(part) for part in path]
    given = []
    for override in overrides:
        parts = override.partition("=")[0].split(".")
        if dotted[: len(parts)] == parts:
            given.append(override)
    return f" (overridden: {', '.join(given)})" if given else ""


def _resolve_trace_paths(data: dict[str, Any], source: str) -> None:
    """Trace paths are relative to the scenario file; the resolved scenario records them whole."""
    base = Path(source).resolve().parent
    for section, key in (("traffic", "trace"), ("batch_jobs", "file")):
        entries = data.get(section)
        for source_data in entries if isinstance(entries, list) else []:
            trace = source_data.get(key) if isinstance(source_data, dict) else None
            if isinstance(trace, dict) and isinstance(trace.get("path"), str):
                trace["path"] = str((base / trace["path"]).resolve())


def _apply_override(data: dict[str, Any], override: str) -> None:
    path, sep, text = override.partition("=")
    if not sep or not path:
        raise InputError(f"--set {override!r}: expected dotted.path=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or error
        raise InputError(
            f"--set {override!r}: the value {text!r} is not valid YAML: {problem} "
            "(quote a string, close a [list] or {mapping})"
        ) from None
    node: Any = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        key: Any = int(part) if isinstance(node, list) and part.isdigit() else part
        if isinstance(node, list) and isinstance(key, str):  # a list item by its name
            names = [item.get("name") if isinstance(item, dict) else None for item in node]
            key = names.index(key) if key in names else key
        last = i == len(parts) - 1
        if isinstance(node, list) and isinstance(key, int) and key < len(node):
            if last:
                node[key] = value
            else:
                node = node[key]
        elif isinstance(node, dict):
            if last:
                node[key] = value
                return
            if node.get(key) is None:
                _check_new_section(override, parts[:i], key, node)
                node[key] = {}
            node = node[key]
        else:
            where = ".".join(parts[:i]) or "(top level)"
            given = f"entries 0 to {len(node) - 1}" if isinstance(node, list) else "no fields"
            raise InputError(f"--set {override!r}: {where} has {given}, not {part!r}")


def _check_new_section(override: str, at: list[str], key: str, node: dict[str, Any]) -> None:
    """A path may pass through a key the file lacks only when it is a field of the schema
    (a section left to its defaults); a name of the user's (a pool, a model) is added by setting
    the entry whole, so that a mistyped name is not taken for a new entry."""
    fields = _fields_at(at)
    if key in fields:
        return
    where = ".".join(at) or "(top level)"
    known = [*map(str, node), *fields]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    add = f"; a new entry is added whole: {where}.{key}={{...}}" if not fields else ""
    raise InputError(
        f"--set {override!r}: {where} has no {key!r}; {hint}"
        f"it has: {', '.join(known) or 'nothing'}{add}"
    )


def _fields_at(path: Sequence[str]) -> list[str]:
    """Field names of the schema section at a data path (any member of a union); [] where the
    path is a mapping of the user's names (models, pools) or leaves the schema."""
    candidates: list[Any] = [Scenario]
    for part in path:
        found: list[Any] = []
        for annotation in candidates:
            for member in _union_members(_unwrap(annotation)) or (annotation,):
                member = _unwrap(member)
                if isinstance(member, type) and issubclass(member, BaseModel):
                    field = _field(member, part)
                    if field is not None:
                        found.append(field.annotation)
                elif typing.get_origin(member) in (dict, list):
                    found.append(typing.get_args(member)[-1])
        candidates = found
    names: list[str] = []
    for annotation in candidates:
        for member in _union_members(_unwrap(annotation)) or (annotation,):
            member = _unwrap(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                names += [f.alias or n for n, f in member.model_fields.items()]
    return list(dict.fromkeys(names))


def _field(model: type[BaseModel], name: str) -> Any:
    fields = model.model_fields
    return fields.get(name) or next((f for f in fields.values() if f.alias == name), None)


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document holds once every alias is expanded (each node counted once
    per place it appears), computed visiting each node once."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a node cannot contain itself in safe YAML, but stay finite if it does
    total = 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_nodes(key_node, memo) + _expanded_nodes(value_node, memo)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_nodes(item, memo)
    memo[id(node)] = total
    return total


def _index_lines(
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    duplicates: list[str],
    source: str,
    visited: set[int],
) -> None:
    """Line numbers by path. An aliased node is indexed at its first place only: the others
    report the line of their nearest indexed parent (visiting every place would be exponential
    in the number of nested aliases)."""
    lines[path] = node.start_mark.line + 1
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:int":
                key = int(key)
            if key in seen:
                line = key_node.start_mark.line + 1
                duplicates.append(f"{source}:{line}: {_dotted((*path, key))}: duplicate key")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines, duplicates, source, visited)
            lines[(*path, key)] = key_node.start_mark.line + 1  # a key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines, duplicates, source, visited)


def _data_path(data: Any, loc: Path_) -> Path_:
    """The part of a pydantic location that exists in the YAML (drops union tags)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict | list):
            continue  # a union member's tag, or a missing/unknown key handled by the caller
        else:
            break
    return tuple(path)


def _where(source: str, lines: dict[Path_, int], path: Path_) -> str:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return f"{source}:{lines[path[:end]]}"
    return source


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) if path else "(top level)"


def _located(error: Any, data: Any) -> tuple[Path_, str]:
    """A pydantic error as (its path in the YAML, a message)."""
    loc = tuple(error["loc"])
    kind = error["type"]
    path = _data_path(data, loc)
    if kind in ("extra_forbidden", "missing") and loc and loc[-1] not in path:
        path = (*path, loc[-1])
    return path, _describe(error, loc, path)


def _describe(error: Any, loc: Path_, path: Path_) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    bounds = {
        "greater_than_equal": ">= {ge}",
        "greater_than": "> {gt}",
        "less_than_equal": "<= {le}",
        "less_than": "< {lt}",
    }
    if kind in bounds:
        return "must be " + bounds[kind].format(**ctx) + f", got {_shown_value(error['input'])}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field; {hint}allowed: {', '.join(allowed)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {_shown_value(error['input'])}"
    if kind == "union_tag_invalid":
        return (
            f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} "
            f"{ctx.get('tag')!r}; allowed: {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        return _missing_tag(ctx.get("discriminator", "").strip("'"), error["input"], loc)
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, got {_shown_value(error['input'])}"
    if kind == "finite_number":
        return f"must be a finite number, got {_shown_value(error['input'])}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, got {_shown_value(error['input'])}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _missing_tag(tag: str, given: Any, loc: Path_) -> str:
    """A section of a tagged kind without its tag: most often the tag's key is misspelt."""
    keys = [str(key) for key in given] if isinstance(given, dict) else []
    close = difflib.get_close_matches(tag, keys, n=1)
    if close:
        return f"unknown field {close[0]!r} (did you mean {tag!r}?)"
    tags = [repr(t) for t in _tags(_annotation_at(loc), tag)]
    return f"needs the field {tag!r}" + (f": one of {', '.join(tags)}" if tags else "")


def _tags(annotation: Any, tag: str) -> list[Any]:
    """The values of the tag field across the members of a tagged union."""
    found: list[Any] = []
    for member in _union_members(_unwrap(annotation)):
        fields = getattr(_unwrap(member), "model_fields", {})
        if tag in fields:
            found.extend(typing.get_args(fields[tag].annotation))
    return found


def _allowed_keys(loc: Path_) -> list[str]:
    """Field names of the model at a pydantic location (following dicts, lists and union tags)."""
    annotation = _unwrap(_annotation_at(loc))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _annotation_at(loc: Path_) -> Any:
    """The type at a pydantic location (None where the location leaves the scenario's types)."""
    annotation: Any = Scenario
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _field(annotation, part)
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        elif _union_members(annotation):
            annotation = _member_with_tag(annotation, part)
            if annotation is None:
                return None
    return annotation


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    members = [m for m in _union_members(annotation) if m is not type(None)]
    if len(members) == 1:
        return _unwrap(members[0])
    return annotation


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()


def _member_with_tag(annotation: Any, tag: Any) -> Any:
    for member in _union_members(annotation):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field in member.model_fields.values():
                if typing.get_origin(field.annotation) is typing.Literal and tag in typing.get_args(
                    field.annotation
                ):
                    return member
    return None
