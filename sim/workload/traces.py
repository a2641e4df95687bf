"""Request traces read from files: Mooncake JSONL, Azure LLM inference CSV, plain CSV.

A trace is arrival times plus prompt and output lengths, and for Mooncake the ids of the
prompt's 512-token blocks (each id names the whole prefix up to the end of its block: DESIGN.md,
"Prompts as block chains"). Bad lines raise an InputError naming the file, the line and the
field, or are skipped and counted (`on_bad_line: skip`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.config_base import StrictModel
from sim.errors import InputError
from sim.input_files import TRACE_MAX_BYTES, read_bytes, read_text
from sim.units import PositiveSeconds, Seconds
from sim.work import MAX_REQUESTS
from sim.workload.distributions import MAX_TOKENS

MOONCAKE_BLOCK_TOKENS = 512  # Mooncake's hash_ids cover 512 prompt tokens each
_INT64 = np.iinfo(np.int64)
_MAX_TIME = 1e15  # a trace time (s or ms) beyond this is a corrupt line, not a date
_EPOCH = datetime(1970, 1, 1)  # naive: Azure stamps have no zone, wall-clock differences count


class TraceColumns(StrictModel):
    """Column names of a plain CSV trace."""

    arrival_s: str = Field(
        "arrival_s", description="Column of arrival times, in `time_unit` (s or ms)"
    )
    prompt_tokens: str = Field("prompt_tokens", description="Column of prompt lengths, tokens")
    output_tokens: str = Field("output_tokens", description="Column of output lengths, tokens")


class TraceConfig(StrictModel):
    """Replay of a request trace, in place of `arrivals`, `prompt_tokens` and `output_tokens`."""

    path: str = Field(description="Trace file; a relative path is relative to the scenario file")
    format: Literal["mooncake", "azure", "csv"] = Field(
        description="mooncake (JSONL with hash_ids), azure (LLM inference CSV), csv (named columns)"
    )
    time_scale: float = Field(
        1.0,
        ge=1e-6,
        le=1e6,
        description="Speed-up, applied after the window: arrival s = (trace s - first trace s "
        "in the window) / time_scale (2 = twice as fast)",
    )
    start_s: Seconds = Field(
        0.0, ge=0, description="Window start, s of trace time from its first request"
    )
    end_s: PositiveSeconds | None = Field(
        None,
        description="Window end (excluded), s of trace time from its first request "
        "(null: the whole trace)",
    )
    loop: bool = Field(
        False,
        description="Replay the window again and again until duration_s, every "
        "span + mean inter-arrival gap s",
    )
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
    """Requests in arrival order. `block_ids[i]` are request i's ids at `block_size` tokens per
    block (ceil(prompt / block_size) of them); None when the format has no prefix information."""

    arrival_s: np.ndarray  # float64, non-decreasing, the first at 0
    prompt_tokens: np.ndarray  # int64, >= 1
    output_tokens: np.ndarray  # int64, >= 1
    block_ids: list[list[int]] | None
    block_size: int | None  # tokens per trace block
    path: str
    skipped_lines: int

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    def repeated_until(self, duration_s: float, most: int | None = None) -> Trace:
        """The requests arriving before `duration_s` when the trace is tiled with period
        span + mean inter-arrival gap (so the gap across the seam is a typical one), at most
        `most` of them.

        A replay replays the same content: repeated requests keep their block ids, so a copy
        hits the prefix cache where the first pass left its blocks.
        """
        if self.span_s <= 0:
            raise InputError(f"{self.path}: cannot loop a trace whose requests all arrive at once")
        period_s = self.span_s * len(self) / (len(self) - 1)
        copies = duration_s / period_s + 1
        if most is not None:
            copies = min(copies, -(-most // len(self)))
        if copies * len(self) > MAX_REQUESTS:
            raise InputError(
                f"{self.path}: looping its {len(self):,} requests every {period_s:.3g} s for "
                f"duration_s ({duration_s:g} s) replays about {copies * len(self):.3g} requests, "
                f"more than the {MAX_REQUESTS:,} a run may have: set max_requests, a longer "
                "window or a smaller time_scale"
            )
        copies = int(copies)
        arrival = (np.arange(copies)[:, None] * period_s + self.arrival_s).ravel()
        count = int(np.searchsorted(arrival, duration_s, side="left"))
        if most is not None:
            count = min(count, most)
        return replace(
            self,
            arrival_s=arrival[:count],
            prompt_tokens=np.tile(self.prompt_tokens, copies)[:count],
            output_tokens=np.tile(self.output_tokens, copies)[:count],
            block_ids=None if self.block_ids is None else (self.block_ids * copies)[:count],
        )


def load_trace(path: Path, cfg: TraceConfig) -> Trace:
    """Read and validate, sort stably by arrival, keep the window [start_s, end_s) of seconds
    since the first request, re-base to the first kept request, then divide by time_scale.

    Mooncake block ids are renumbered (`renumbered_block_ids`): they carry identity only, and
    small ids keep re-chunked ids within int64 and chains' id fields whatever the trace used
    (sequence numbers, 64-bit hashes).
    """
    text = read_text(path, "trace", TRACE_MAX_BYTES)
    reader = {"mooncake": _mooncake, "azure": _azure, "csv": _plain_csv}[cfg.format]
    rows, skipped = reader(text, path, cfg)
    if not rows:
        raise InputError(f"{path}: no requests in the trace")
    times = np.array([row[0] for row in rows], dtype=np.float64)
    order = np.argsort(times, kind="stable")
    offsets = times[order] - times[order[0]]
    keep = offsets >= cfg.start_s
    if cfg.end_s is not None:
        keep &= offsets < cfg.end_s
    if not keep.any():
        raise InputError(
            f"{path}: no requests in the window [{cfg.start_s:g}, {cfg.end_s or 'end'}) s; "
            f"the trace spans {offsets[-1]:g} s"
        )
    picked = order[keep].tolist()
    blocks = (
        renumbered_block_ids([rows[i][3] for i in picked]) if cfg.format == "mooncake" else None
    )
    return Trace(
        arrival_s=(offsets[keep] - offsets[keep][0]) / cfg.time_scale,
        prompt_tokens=np.array([rows[i][1] for i in picked], dtype=np.int64),
        output_tokens=np.array([rows[i][2] for i in picked], dtype=np.int64),
        block_ids=blocks,
        block_size=MOONCAKE_BLOCK_TOKENS if blocks is not None else None,
        path=str(path),
        skipped_lines=skipped,
    )


def replayed_trace(cfg: TraceConfig, duration_s: float, most: int | None) -> Trace:
    """The trace a source replays: read, windowed, looped when asked (`capsim validate` reads
    it the same way, so it reports what `capsim run` would)."""
    trace = load_trace(Path(cfg.path), cfg)
    return trace.repeated_until(duration_s, most) if cfg.loop else trace


def rechunk_block_ids(
    ids: Sequence[int], prompt_tokens: int, from_size: int, to_size: int
) -> list[int]:
    """One prompt's block ids at `to_size` tokens per block; the rule is `rechunk_prompts`'."""
    pool_ids, _ = rechunk_prompts([ids], np.array([prompt_tokens]), from_size, to_size)
    return pool_ids.tolist()


def rechunk_prompts(
    block_ids: Sequence[Sequence[int]], prompt_tokens: np.ndarray, from_size: int, to_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Prompts' block ids re-chunked from `from_size` to `to_size` tokens per block, keeping
    prefix identity; returns (ids, index of the prompt of each id), prompt after prompt.

    Only a prompt's full blocks get ids: prompt_tokens // to_size of them. New block j (tokens
    [j*to_size, (j+1)*to_size)) is named by the trace block h holding its last token and its
    position k among the new blocks whose last token lies in h: id = h * m + k, where
    m = ceil(from_size / to_size) bounds k. Since h names the whole prefix up to its end, two
    prompts share new block j exactly when they share the trace block of its last token, and
    distinct (h, k) give distinct ids. Splitting (512 -> 16) gives trace block h the ids
    32h..32h+31; merging (16 -> 512) names each new block by the last trace block in it
    (id = h); other sizes (16 -> 24) follow the same rule.
    """
    if from_size < 1 or to_size < 1:
        raise ValueError(f"block sizes must be >= 1, got {from_size} and {to_size}")
    tokens = np.asarray(prompt_tokens, dtype=np.int64)
    lengths = np.fromiter((len(ids) for ids in block_ids), dtype=np.int64, count=len(block_ids))
    short = np.flatnonzero(lengths < -(-tokens // from_size))
    if short.size:
        raise ValueError(
            f"prompt {short[0]} has {lengths[short[0]]} blocks of {from_size} tokens, "
            f"too few for {tokens[short[0]]} tokens"
        )
    flat = np.fromiter(chain.from_iterable(block_ids), dtype=np.int64, count=int(lengths.sum()))
    per_block = -(-from_size // to_size)
    if flat.size and (flat.max() > _INT64.max // per_block - 1 or flat.min() < 0):
        raise ValueError(f"block ids must be in [0, {_INT64.max // per_block - 1}]")
    full = tokens // to_size
    prompt = np.repeat(np.arange(full.size), full)
    j = np.arange(prompt.size) - np.repeat(np.cumsum(full) - full, full)
    trace_block = ((j + 1) * to_size - 1) // from_size
    k = j - trace_block * from_size // to_size
    h = flat[(np.cumsum(lengths) - lengths)[prompt] + trace_block]
    return h * per_block + k, prompt


def guess_format(path: Path) -> Literal["mooncake", "azure", "csv"]:
    """.jsonl is Mooncake; a CSV whose header starts with TIMESTAMP is Azure; else plain CSV."""
    if path.suffix == ".jsonl":
        return "mooncake"
    header = read_bytes(path, "trace", 4096).split(b"\n", 1)[0].decode("utf-8-sig", "replace")
    return "azure" if header.startswith("TIMESTAMP") else "csv"


def renumbered_block_ids(ids_per_request: Sequence[Sequence[int]]) -> list[list[int]]:
    """Block ids renumbered 0, 1, ... in order of first appearance: the same sharing, small ids."""
    lengths = [len(ids) for ids in ids_per_request]
    flat = np.fromiter(chain.from_iterable(ids_per_request), dtype=np.int64, count=sum(lengths))
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(first.size)
    renumbered = rank[inverse.ravel()].tolist()
    ends = np.cumsum(lengths).tolist()
    return [renumbered[end - n : end] for end, n in zip(ends, lengths, strict=True)]


Row = tuple[float, int, int, Any]  # arrival s (trace clock), prompt, output, block ids or None


class _BadLine(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem


def _shown(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return _clip(
        json.dumps(value) if value is None or isinstance(value, str | int | float) else "?"
    )


def _clip(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text):,} characters)"


def _count(value: Any, field: str, text: bool) -> int:
    """A count >= 1: a JSON integer, or (`text`, from CSV) its decimal digits."""
    number = None
    if text and isinstance(value, str) and value.strip().isdecimal():
        number = int(value)
    elif not text and type(value) is int:
        number = value
    if number is None or number < 1:
        raise _BadLine(field, f"must be an integer >= 1, got {_shown(value)}")
    if number > MAX_TOKENS:
        raise _BadLine(field, f"must be at most {MAX_TOKENS:,} tokens, got {_shown(number)}")
    return number


def _time(value: Any, field: str, text: bool) -> float:
    """A finite number: a JSON number, or (`text`, from CSV) its decimal form."""
    plausible = isinstance(value, str) if text else type(value) in (int, float)
    try:
        number = float(value) if plausible else math.nan
    except (ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise _BadLine(field, f"must be a number, got {_shown(value)}")
    if abs(number) > _MAX_TIME:
        raise _BadLine(field, f"must be within +-{_MAX_TIME:g}, got {_shown(value)}")
    return number


def _collect(
    lines: list[tuple[int, Any]], parse: Callable[[Any], Row], path: Path, cfg: TraceConfig
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
        except ValueError:  # an integer of more digits than Python converts
            raise _BadLine("(line)", "not valid JSON: a number with too many digits") from None
        except RecursionError:
            raise _BadLine("(line)", "not valid JSON: nested too deeply") from None
        if not isinstance(record, dict):
            raise _BadLine("(line)", "expected a JSON object")
        for field in ("timestamp", "input_length", "output_length", "hash_ids"):
            if field not in record:
                raise _BadLine(field, "is missing")
        prompt = _count(record["input_length"], "input_length", text=False)
        ids = record["hash_ids"]
        if not isinstance(ids, list) or not all(
            type(i) is int and _INT64.min <= i <= _INT64.max for i in ids
        ):
            raise _BadLine("hash_ids", "must be a list of 64-bit integers")
        needed = -(-prompt // MOONCAKE_BLOCK_TOKENS)
        if len(ids) != needed:
            raise _BadLine(
                "hash_ids",
                f"has {len(ids)} ids, {prompt} tokens need {needed} (one per "
                f"{MOONCAKE_BLOCK_TOKENS} tokens)",
            )
        return (
            _time(record["timestamp"], "timestamp", text=False) / 1000.0,
            prompt,
            _count(record["output_length"], "output_length", text=False),
            ids,
        )

    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    return _collect(lines, parse, path, cfg)


def _csv_lines(text: str, path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    try:
        header = reader.fieldnames or []
        missing = [name for name in needed if name not in header]
        if missing:
            raise InputError(
                f"{path}:1: missing column(s) {', '.join(missing)}; the header has "
                f"{_clip(', '.join(header))}"
            )
        return [(reader.line_num, row) for row in reader]
    except csv.Error as error:  # a field over the csv module's size limit, a NUL byte
        raise InputError(f"{path}:{reader.line_num + 1}: not valid CSV: {error}") from None


def _azure(text: str, path: Path, cfg: TraceConfig) -> tuple[list[Row], int]:
    def parse(row: dict) -> Row:
        stamp = row["TIMESTAMP"]
        whole, _, fraction = (stamp or "").partition(".")
        try:
            moment = datetime.fromisoformat(whole)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        seconds = None if moment is None else (moment - _EPOCH).total_seconds()
        if seconds is None or (fraction and not fraction.isdecimal()):
            raise _BadLine("TIMESTAMP", f"must be a date and time, got {_shown(stamp)}")
        return (
            seconds + (float(f"0.{fraction}") if fraction else 0.0),
            _count(row["ContextTokens"], "ContextTokens", text=True),
            _count(row["GeneratedTokens"], "GeneratedTokens", text=True),
            None,
        )

    lines = _csv_lines(text, path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    return _collect(lines, parse, path, cfg)


def _plain_csv(text: str, path: Path, cfg: TraceConfig) -> tuple[list[Row], int]:
    names = cfg.columns
    unit_s = 1e-3 if cfg.time_unit == "ms" else 1.0

    def parse(row: dict) -> Row:
        return (
            _time(row[names.arrival_s], names.arrival_s, text=True) * unit_s,
            _count(row[names.prompt_tokens], names.prompt_tokens, text=True),
            _count(row[names.output_tokens], names.output_tokens, text=True),
            None,
        )

    needed = (names.arrival_s, names.prompt_tokens, names.output_tokens)
    return _collect(_csv_lines(text, path, needed), parse, path, cfg)
