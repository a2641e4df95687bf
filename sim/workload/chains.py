"""Prompts as block chains, stored as runs.

A block id names a whole prefix up to the end of its block (DESIGN.md, "Prompts as block
chains"). Here a block id is a pair (owner, index): the owner is a system-prompt variant of a
traffic source, a session, or one block of a trace (whose id already names its prefix), and
the index counts that owner's blocks. A prompt is a tuple of runs `(owner, first, end)`:
consecutive indices first..end-1 of one owner. A session's turn is two runs (its system prompt
and its own history) however long the history is, and whoever uses index k of an owner uses
all of that owner's indices below k: the prefix cache relies on both.

Owner numbers live in disjoint namespaces and are deterministic (no Python `hash`, which is
salted per process): the kind in the top bits, then 64 bits of a hash of the traffic source's
name (thousands of sources never collide, so no two share a session's or a variant's blocks),
then 60 bits for the variant, session or trace block.
"""

from __future__ import annotations

import hashlib
from functools import cache

SYSTEM, SESSION, TRACE = 1, 2, 3

Run = tuple[int, int, int]  # (owner, first index, end index)
Runs = tuple[Run, ...]


@cache  # called per prompt: hash each source's name once
def source_uid(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _owner(kind: int, source: str, number: int) -> int:
    return (kind << 124) | (source_uid(source) << 60) | number


def system_owner(source: str, variant: int) -> int:
    return _owner(SYSTEM, source, variant)


def session_owner(source: str, session: int) -> int:
    return _owner(SESSION, source, session)


def trace_owner(source: str, trace_block: int) -> int:
    """A trace's own block id (already a prefix name) in the source's namespace."""
    return _owner(TRACE, source, trace_block)


def runs_blocks(runs: Runs) -> int:
    return sum(end - first for _, first, end in runs)


def runs_prefix(runs: Runs, blocks: int) -> Runs:
    """The first `blocks` blocks of a chain."""
    out: list[Run] = []
    for owner, first, end in runs:
        if blocks <= 0:
            break
        stop = min(end, first + blocks)
        out.append((owner, first, stop))
        blocks -= stop - first
    return tuple(out)


def block_ids(runs: Runs) -> list[tuple[int, int]]:
    """Every block of a chain as (owner, index): for tests and small reference models."""
    return [(owner, k) for owner, first, end in runs for k in range(first, end)]


def trace_runs(
    source: str, trace_ids: list[int], trace_block: int, prompt_tokens: int, block: int
) -> Runs:
    """A traced prompt's chain at the pool's block size, keeping prefix identity.

    Pool block j (tokens [j*block, (j+1)*block)) is named by the trace block holding its last
    token together with its position within that trace block: trace block i owns pool blocks
    i*trace_block // block up to (i+1)*trace_block // block - 1, indexed from 0. Two prompts
    share pool block j exactly when they share the trace block of its last token, which names
    the whole prefix. This splits (512 -> 16: 32 blocks per trace block), merges (16 -> 512:
    one pool block named by the last of its 32 trace blocks) and handles sizes that divide
    neither way; only the prompt's full pool blocks are named.
    """
    full = prompt_tokens // block
    runs: list[Run] = []
    for i, trace_id in enumerate(trace_ids):
        first = i * trace_block // block
        if first >= full:
            break
        end = min((i + 1) * trace_block // block, full)
        if end > first:
            runs.append((trace_owner(source, trace_id), 0, end - first))
    return tuple(runs)
