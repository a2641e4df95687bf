"""Integer block ids in disjoint namespaces, so system prompts, sessions and traces never collide.

An id names a whole prefix up to the end of its block (DESIGN.md, "Prompts as block chains"):
`(kind << 60) | (owner << 24) | block_index` where the owner is a system-prompt variant of one
traffic source, one session, or one trace source, and block_index counts blocks from the start
of the prompt. Ids are deterministic (no Python `hash`, which is salted per process).
"""

from __future__ import annotations

import zlib

SYSTEM, SESSION, TRACE = 1, 2, 3
_BLOCK_BITS = 24


def source_uid(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFFF


def system_owner(source: str, variant: int) -> int:
    return (source_uid(source) << 16) | variant


def block_id(kind: int, owner: int, index: int) -> int:
    return (kind << 60) | (owner << _BLOCK_BITS) | index


def trace_block_id(source: str, trace_id: int) -> int:
    """A trace's own block id (already a prefix name) moved into the source's namespace."""
    return (TRACE << 60) | (source_uid(source) << 36) | trace_id
