"""One root seed decides everything: each component draws from its own Generator.

A component's stream is keyed by its name (not by its position in the scenario), so adding a
traffic source leaves the draws of the others unchanged. The name becomes the SeedSequence
spawn key through a 128-bit BLAKE2b digest: distinct names share a stream only with negligible
probability (a 32-bit checksum per part would make collisions plausible among many names).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

KEY_WORDS = 4  # 32-bit words of the digest in the spawn key


def stream(seed: int, *name: str) -> np.random.Generator:
    """The Generator of the component called `name` (e.g. `stream(42, "traffic", "chat")`)."""
    key = spawn_key(name)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def spawn_key(name: tuple[str, ...]) -> tuple[int, ...]:
    """The digest of the name path, each part length-prefixed so that ("ab", "c") and
    ("a", "bc") differ, as KEY_WORDS 32-bit words."""
    path = b"".join(len(p).to_bytes(4, "little") + p for p in (part.encode() for part in name))
    digest = hashlib.blake2b(path, digest_size=4 * KEY_WORDS).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, len(digest), 4))


def word(seed: int, *name: str) -> int:
    """A 64-bit key of (seed, name): the stream family of many small entities of one purpose."""
    head = seed.to_bytes(16, "little", signed=True)
    path = b"".join(len(p).to_bytes(4, "little") + p for p in (part.encode() for part in name))
    return int.from_bytes(hashlib.blake2b(head + path, digest_size=8).digest(), "little")


def choice_cdf(p: np.ndarray) -> np.ndarray:
    """The table `choose` draws from: numpy's `Generator.choice(k, p=p)` builds it on every call."""
    cdf = np.asarray(p, dtype=float).cumsum()
    cdf /= cdf[-1]
    return cdf


def choose(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with the probabilities of `cdf` (from `choice_cdf`): the values and the
    stream position of `rng.choice(k, n, p=p)` (numpy draws n uniforms and searches its cdf),
    without the tens of microseconds its argument checks cost per call."""
    return cdf.searchsorted(rng.random(n), side="right")


class EntityStreams:
    """One stream per entity (a session) of one purpose: a Philox generator rekeyed with the
    entity's number, so an entity's draws never depend on which entities drew before it
    (common random numbers across variants), and switching costs microseconds where a new
    Generator per entity would cost tens."""

    def __init__(self, seed: int, *name: str) -> None:
        self._word = word(seed, *name)
        self._bits = np.random.Philox(key=self._word)
        self._rng = np.random.Generator(self._bits)
        # A new Philox's state (counter 0, nothing buffered) is an entity's start: one dict,
        # its key's second word set per entity (the setter copies the values). Its arrays are
        # held as lists (the stubs say arrays): the setter reads them item by item, which costs
        # it a third of the time on a list (2 us of about 3 per entity).
        start = self._bits.state
        self._key: list[int] = start["state"]["key"].tolist()
        state = {"counter": start["state"]["counter"].tolist(), "key": self._key}
        self._start: Any = {**start, "state": state, "buffer": start["buffer"].tolist()}

    def at(self, entity: int) -> np.random.Generator:
        """The entity's stream from its start (valid until the next call)."""
        self._key[1] = entity
        self._bits.state = self._start
        return self._rng


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def unit(key: int, entity: int, sub: int = 0) -> float:
    """A uniform draw in [0, 1) that is a pure function of (key, entity, sub): one SplitMix64
    output (a few integer operations, no Generator), for one draw per request keyed by the
    request's identity rather than by the order in which draws happen."""
    x = (key + (entity + 1) * _GOLDEN + sub * 0xD1B54A32D192ED03) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) >> 11) * 2.0**-53
