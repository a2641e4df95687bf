"""Deterministic hashing for sticky routing (Python's own `hash` of a str is salted per process)."""

from __future__ import annotations

import zlib

import numpy as np

_MASK = (1 << 64) - 1


def key_hash(key: str) -> int:
    return zlib.crc32(key.encode()) | (zlib.adler32(key.encode()) << 32)


def rendezvous_order(key: str, replicas: int) -> list[int]:
    """Replicas in the key's rendezvous (highest-random-weight) order.

    Each (key, replica) pair gets a pseudo-random weight from splitmix64; a key's first choice
    moves only when its replica leaves, and its spill order is its own, so spilled keys spread.
    """
    with np.errstate(over="ignore"):
        x = (
            np.uint64(key_hash(key))
            + np.arange(1, replicas + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        ) & np.uint64(_MASK)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return np.argsort(-x.astype(np.float64), kind="stable").tolist()
