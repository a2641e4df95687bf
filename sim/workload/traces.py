"""Request traces read from files: Mooncake JSONL, Azure LLM inference CSV, plain CSV.

A trace is arrival times plus prompt and output lengths, and for Mooncake the ids of the
prompt's 512-token blocks (each id names the whole prefix up to its block). Bad lines raise an
InputError naming the file, the line and the field, or are skipped and counted
(`on_bad_line: skip`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.errors import InputError
from sim.units import Seconds

MOONCAKE_BLOCK_TOKENS = 512  # Mooncake's hash_ids cover 512 prompt tokens each


class TraceColumns(StrictModel):
    """Column names of a plain CSV trace."""

    arrival_s: str = Field("arrival_s", description="Column of arrival times")
    prompt_tokens: str = Field("prompt_tokens", description="Column of prompt lengths, tokens")
    output_tokens: str = Field("output_tokens", description="Column of output lengths, tokens")


class TraceConfig(StrictModel):
    """Replay of a request trace, in place of `arrivals`, `prompt_tokens` and `output_tokens`."""

    path: str = Field(description="Trace file; a relative path is relative to the scenario file")
    format: Literal["mooncake", "azure", "csv"] = Field(
        description="mooncake (JSONL with hash_ids), azure (LLM inference CSV), csv (named columns)"
    )
    time_scale: float = Field(
        1.0, gt=0, description="Speed-up: arrival = trace offset / time_scale (2 = twice as fast)"
    )
    start_s: Seconds = Field(
        0.0, ge=0, description="Window start, s of trace time from its first request"
    )
    end_s: Seconds | None = Field(
        None, gt=0, description="Window end, s of trace time (null: the whole trace)"
    )
    loop: bool = Field(False, description="Replay the window again and again until duration_s")
    on_bad_line: Literal["error", "skip"] = Field(
        "error", description="A malformed line stops the run (error) or is skipped and counted"
    )
    columns: TraceColumns = Field(
        default_factory=lambda: TraceColumns(), description="Column names (csv format)"
    )
    time_unit: Literal["s", "ms"] = Field(
        "s", description="Unit of the arrival column (csv format)"
    )

    @model_validator(mode="after")
    def _window(self) -> TraceConfig:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        return self


@dataclass(frozen=True)
class Trace:
    arrival_s: np.ndarray  # float64, non-decreasing, the first at 0
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    block_ids: list[list[int]] | None  # per request, the trace's own block ids (Mooncake)
    block_size: int | None  # tokens per trace block
    path: str
    skipped_lines: int

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    def repeated_until(self, duration_s: float) -> Trace:
        """The trace tiled until `duration_s` (period: span + mean gap). A replay replays the
        same content, so repeated requests keep their block ids (and hit the cache)."""
        if len(self) == 0 or self.span_s <= 0:
            return self
        period = self.span_s + self.span_s / max(len(self) - 1, 1)
        copies = int(np.ceil(duration_s / period))
        if copies <= 1:
            return self
        offsets = np.repeat(np.arange(copies) * period, len(self))
        return replace(
            self,
            arrival_s=np.tile(self.arrival_s, copies) + offsets,
            prompt_tokens=np.tile(self.prompt_tokens, copies),
            output_tokens=np.tile(self.output_tokens, copies),
            block_ids=None if self.block_ids is None else self.block_ids * copies,
        )


def load_trace(path: Path, cfg: TraceConfig) -> Trace:
    """Read, validate, sort (stably) by arrival, window and re-base to 0, scale time."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read the trace: {error.strerror}") from None
    reader = {"mooncake": _mooncake, "azure": _azure, "csv": _plain_csv}[cfg.format]
    rows, skipped = reader(text, path, cfg)
    if not rows:
        raise InputError(f"{path}: no requests in the trace")
    times = np.array([r[0] for r in rows], dtype=float)
    order = np.argsort(times, kind="stable")
    times = times[order] - times[order[0]]
    keep = times >= cfg.start_s
    if cfg.end_s is not None:
        keep &= times < cfg.end_s
    picked = order[keep]
    if picked.size == 0:
        raise InputError(f"{path}: no requests between start_s and end_s")
    arrival = (times[keep] - times[keep][0]) / cfg.time_scale
    blocks = [rows[i][3] for i in picked] if cfg.format == "mooncake" else None
    return Trace(
        arrival_s=arrival,
        prompt_tokens=np.array([rows[i][1] for i in picked], dtype=np.int64),
        output_tokens=np.array([rows[i][2] for i in picked], dtype=np.int64),
        block_ids=blocks,
        block_size=MOONCAKE_BLOCK_TOKENS if blocks is not None else None,
        path=str(path),
        skipped_lines=skipped,
    )


Row = tuple[float, int, int, Any]


class _BadLine(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _BadLine(field, f"must be an integer >= 1, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise _BadLine(field, f"must be an integer >= 1, got {value!r}") from None
    if number < 1:
        raise _BadLine(field, f"must be an integer >= 1, got {value!r}")
    return number


def _time(value: Any, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadLine(field, f"must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise _BadLine(field, f"must be a number >= 0, got {value!r}")
    return number


def _collect(
    lines: list[tuple[int, Any]], parse: Any, path: Path, cfg: TraceConfig
) -> tuple[list[Row], int]:
    rows: list[Row] = []
    skipped = 0
    for number, line in lines:
        try:
            rows.append(parse(line))
        except _BadLine as bad:
            if cfg.on_bad_line == "skip":
                skipped += 1
                continue
            raise InputError(f"{path}:{number}: {bad.field}: {bad.problem}") from None
    return rows, skipped


def _mooncake(text: str, path: Path, cfg: TraceConfig) -> tuple[list[Row], int]:
    def parse(line: str) -> Row:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise _BadLine("(line)", f"not valid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise _BadLine("(line)", "expected a JSON object")
        for field in ("timestamp", "input_length", "output_length", "hash_ids"):
            if field not in record:
                raise _BadLine(field, "is missing")
        prompt = _count(record["input_length"], "input_length")
        ids = record["hash_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise _BadLine("hash_ids", "must be a list of integers")
        needed = -(-prompt // MOONCAKE_BLOCK_TOKENS)
        if len(ids) < needed:
            raise _BadLine("hash_ids", f"has {len(ids)} ids, {needed} needed for {prompt} tokens")
        return (
            _time(record["timestamp"], "timestamp") / 1000.0,
            prompt,
            _count(record["output_length"], "output_length"),
            ids[:needed],
        )

    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    return _collect(lines, parse, path, cfg)


def _csv_lines(text: str, path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [name for name in needed if name not in header]
    if missing:
        raise InputError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
        )
    return [(reader.line_num, row) for row in reader]


def _azure(text: str, path: Path, cfg: TraceConfig) -> tuple[list[Row], int]:
    def parse(row: dict) -> Row:
        stamp = row["TIMESTAMP"] or ""
        whole, _, fraction = stamp.partition(".")
        try:
            seconds = datetime.fromisoformat(whole).timestamp()
        except ValueError:
            raise _BadLine("TIMESTAMP", f"not a date and time: {stamp!r}") from None
        if fraction and not fraction.isdigit():
            raise _BadLine("TIMESTAMP", f"not a date and time: {stamp!r}")
        seconds += float(f"0.{fraction}") if fraction else 0.0
        return (
            seconds,
            _count(row["ContextTokens"], "ContextTokens"),
            _count(row["GeneratedTokens"], "GeneratedTokens"),
            None,
        )

    lines = _csv_lines(text, path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    return _collect(lines, parse, path, cfg)


def _plain_csv(text: str, path: Path, cfg: TraceConfig) -> tuple[list[Row], int]:
    names = cfg.columns
    scale = 1000.0 if cfg.time_unit == "ms" else 1.0

    def parse(row: dict) -> Row:
        return (
            _time(row[names.arrival_s], names.arrival_s) / scale,
            _count(row[names.prompt_tokens], names.prompt_tokens),
            _count(row[names.output_tokens], names.output_tokens),
            None,
        )

    needed = (names.arrival_s, names.prompt_tokens, names.output_tokens)
    return _collect(_csv_lines(text, path, needed), parse, path, cfg)


def guess_format(path: Path) -> Literal["mooncake", "azure", "csv"]:
    if path.suffix == ".jsonl":
        return "mooncake"
    try:
        with path.open() as handle:
            header = handle.readline()
    except OSError as error:
        raise InputError(f"{path}: cannot read the trace: {error.strerror}") from None
    return "azure" if header.startswith("TIMESTAMP") else "csv"
