"""YAML text of JSON-like data (dicts, lists, strings, numbers, booleans, None), written
directly: a collection of scalars on one line in flow style, others in block style.

PyYAML's dumper builds a node per value and asks its resolver's regular expressions how to
spell each scalar: 3.5-5 s for fleet-day's resolved scenario (2,000 accounts, 2,000 traffic
sources, some 180,000 scalars), against about a tenth of that here. Anything out of the ordinary
(a string PyYAML would read back as another type, or that needs quoting) is still spelled by
PyYAML, so the text always reads back as the data it came from.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import yaml

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")  # spelled as is if it resolves to a string
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_NO_WRAP = 1 << 30  # line width for PyYAML's quoted scalars: one line, however long
_MAX_KEY = 1000  # YAML reads an implicit key of at most 1,024 characters
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present


def yaml_text(data: dict[str, Any]) -> str:
    """The block-style YAML document of a mapping."""
    lines: list[str] = []
    try:
        _block_mapping(data, "", lines)
    except _Unusual:
        return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(lines) + "\n" if lines else "{}\n"


class _Unusual(Exception):
    """Data this writer leaves to PyYAML (a key too long to be a YAML simple key)."""


def _block_mapping(data: dict[str, Any], indent: str, lines: list[str]) -> None:
    for key, value in data.items():
        name = _key(key)
        if _is_nested(value):
            lines.append(f"{indent}{name}:")
            if isinstance(value, dict):
                _block_mapping(value, indent + "  ", lines)
            else:
                _block_sequence(value, indent, lines)
        else:
            lines.append(f"{indent}{name}: {_flow(value)}")


def _block_sequence(data: list[Any], indent: str, lines: list[str]) -> None:
    for item in data:
        if not _is_nested(item):
            lines.append(f"{indent}- {_flow(item)}")
            continue
        inner: list[str] = []
        if isinstance(item, dict):
            _block_mapping(item, "", inner)
        else:
            _block_sequence(item, "", inner)
        lines.append(f"{indent}- {inner[0]}")
        lines.extend(f"{indent}  {line}" for line in inner[1:])


def _is_nested(value: Any) -> bool:
    """A non-empty collection holding a collection: written in block style."""
    if isinstance(value, dict):
        return any(isinstance(v, (dict, list)) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, (dict, list)) for v in value)
    return False


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return _scalar(value)


def _key(value: Any) -> str:
    text = _scalar(value)
    if len(text) > _MAX_KEY:
        raise _Unusual
    return text


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"not JSON-like data: {type(value).__name__}")


def _float(value: float) -> str:
    """PyYAML's spelling (SafeRepresenter.represent_float): YAML 1.1 reads "1e+20" as a
    string, so an exponent's mantissa gets a dot, "1.0e+20"."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text


@lru_cache(maxsize=1 << 16)
def _string(value: str) -> str:
    if _PLAIN.match(value) and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG:
        return value
    text = yaml.dump(value, Dumper=yaml.SafeDumper, default_style='"', width=_NO_WRAP)
    return text.rstrip("\n")
