"""Deterministic hashing for sticky routing (Python's own `hash` of a str is salted per process)."""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np


def key_hash(key: str) -> int:
    return zlib.crc32(key.encode()) | (zlib.adler32(key.encode()) << 32)


def rendezvous_order(key: str, replicas: int) -> list[int]:
    """Replicas in the key's rendezvous (highest-random-weight) order.

    Each (key, replica) pair gets a pseudo-random weight from splitmix64; a key's first choice
    moves only when its replica leaves, and its spill order is its own, so spilled keys spread.
    Unsigned array arithmetic wraps around silently (no errstate needed, which cost a third of
    the call), and the per-replica terms are made once per pool size.
    """
    x = np.uint64(key_hash(key)) + _replica_terms(replicas)
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    x ^= x >> _S31
    return np.argsort(-x.astype(np.float64), kind="stable").tolist()


@cache
def _replica_terms(replicas: int) -> np.ndarray:
    """splitmix64's increments of replicas 1..n (read only: shared by every call)."""
    terms = np.arange(1, replicas + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    terms.flags.writeable = False
    return terms


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
