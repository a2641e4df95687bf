"""One root seed decides everything: each component draws from its own Generator.

A component's stream is keyed by its name (not by its position in the scenario), so adding a
traffic source leaves the draws of the others unchanged. The name becomes the SeedSequence
spawn key through a 128-bit BLAKE2b digest: distinct names share a stream only with negligible
probability (a 32-bit checksum per part would make collisions plausible among many names).
"""

from __future__ import annotations

import hashlib

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
