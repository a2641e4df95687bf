"""One root seed decides everything: each component draws from its own Generator.

A component's stream is keyed by its name (not by its position in the scenario), so adding a
traffic source leaves the draws of the others unchanged.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *name: str) -> np.random.Generator:
    """The Generator of the component called `name` (e.g. `stream(42, "traffic", "chat")`)."""
    key = tuple(zlib.crc32(part.encode()) for part in name)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
