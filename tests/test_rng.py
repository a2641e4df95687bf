"""Per-component random streams keyed by name."""

from __future__ import annotations

import zlib

import numpy as np

from sim.rng import EntityStreams, choice_cdf, choose, stream, unit, word


def _draws(*name: str) -> list[int]:
    return stream(42, *name).integers(0, 2**62, 4).tolist()


def test_names_with_the_same_crc32_get_different_streams() -> None:
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")  # a known CRC32 collision
    assert _draws("traffic", "plumless") != _draws("traffic", "buckeroo")


def test_the_name_path_is_unambiguous_and_a_stream_is_reproducible() -> None:
    assert _draws("traffic", "ab", "c") != _draws("traffic", "a", "bc")
    assert _draws("traffic", "chat") == _draws("traffic", "chat")
    assert stream(1, "traffic", "chat").random() != stream(2, "traffic", "chat").random()


def test_an_entity_stream_does_not_depend_on_the_entities_drawn_before() -> None:
    streams = EntityStreams(42, "traffic", "chat", "session turns")
    first = streams.at(7).random(3).tolist()
    streams.at(3).random(5)
    assert streams.at(7).random(3).tolist() == first
    assert streams.at(8).random(3).tolist() != first
    assert EntityStreams(43, "traffic", "chat", "session turns").at(7).random(3).tolist() != first


def test_choose_draws_what_numpy_choice_draws_and_leaves_the_stream_where_it_does() -> None:
    for seed, p in enumerate(([0.9, 0.1], [0.2, 0.0, 0.5, 0.3], [1.0], [1 / 3] * 3)):
        for n in (0, 1, 4, 100):
            ours, numpy_s = stream(seed, "a"), stream(seed, "a")
            drawn = choose(ours, choice_cdf(np.array(p)), n)
            expected = numpy_s.choice(len(p), n, p=p)
            assert drawn.tolist() == expected.tolist()
            assert ours.random() == numpy_s.random()


def test_entity_streams_restart_at_each_entity_as_a_new_generator_would() -> None:
    streams = EntityStreams(42, "traffic", "chat", "session turns")
    for entity in (0, 5, 2**40):
        fresh = np.random.Generator(
            np.random.Philox(key=np.array([streams._word, entity], np.uint64))
        )
        assert streams.at(entity).random(6).tolist() == fresh.random(6).tolist()


def test_keyed_uniforms_are_uniform_and_distinct_per_identity() -> None:
    key = word(42, "service", "chat")
    draws = np.array([unit(key, entity, sub) for entity in range(2000) for sub in range(10)])
    assert len(set(draws.tolist())) == len(draws)
    assert draws.min() >= 0 and draws.max() < 1
    # 20,000 uniforms: mean 1/2 with standard error 0.002, variance 1/12; 5-sigma tolerances.
    assert abs(draws.mean() - 0.5) < 5 * (1 / 12 / len(draws)) ** 0.5
    assert abs(draws.var() - 1 / 12) < 0.003
    assert unit(key, 5, 1) == unit(key, 5, 1) != unit(word(43, "service", "chat"), 5, 1)
