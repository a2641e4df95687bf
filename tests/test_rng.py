"""Per-component random streams keyed by name."""

from __future__ import annotations

import zlib

from sim.rng import stream


def _draws(*name: str) -> list[int]:
    return stream(42, *name).integers(0, 2**62, 4).tolist()


def test_names_with_the_same_crc32_get_different_streams() -> None:
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")  # a known CRC32 collision
    assert _draws("traffic", "plumless") != _draws("traffic", "buckeroo")


def test_the_name_path_is_unambiguous_and_a_stream_is_reproducible() -> None:
    assert _draws("traffic", "ab", "c") != _draws("traffic", "a", "bc")
    assert _draws("traffic", "chat") == _draws("traffic", "chat")
    assert stream(1, "traffic", "chat").random() != stream(2, "traffic", "chat").random()
