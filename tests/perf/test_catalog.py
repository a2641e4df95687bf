"""The catalog: every entry loads, counts agree with the published ones, errors list names."""

from __future__ import annotations

import pytest

from sim.errors import InputError
from sim.perf.calibration import get_calibration
from sim.perf.catalog import architecture_names, get_architecture, get_gpu, gpu_names
from sim.perf.shapes import param_counts, replica_shape

# DESIGN.md, "Hardware and model starting values" (DeepSeek-V3: "about 70,000").
KV_BYTES_PER_TOKEN_BF16 = {
    "llama-2-7b": 524_288,
    "llama-3.1-8b": 131_072,
    "llama-3.1-70b": 327_680,
    "qwen2.5-32b": 262_144,
    "gpt-oss-120b": 73_728,
    "deepseek-v3": 70_272,
}


def test_catalog_names() -> None:
    assert gpu_names() == ["a100", "b200", "h100", "h200"]
    assert set(architecture_names()) == set(KV_BYTES_PER_TOKEN_BF16)


@pytest.mark.parametrize(
    ("lookup", "name", "listed"),
    [(get_gpu, "h900", "a100, b200, h100, h200"), (get_architecture, "llama-9", "llama-2-7b")],
)
def test_unknown_name_lists_valid_ones(lookup, name: str, listed: str) -> None:
    with pytest.raises(InputError, match=listed):
        lookup(name)


@pytest.mark.parametrize("name", sorted(KV_BYTES_PER_TOKEN_BF16))
def test_parameter_counts_match_published(name: str) -> None:
    arch = get_architecture(name)
    total, active = param_counts(arch)
    assert total == pytest.approx(arch.params_total, rel=0.01)
    # Published "active" counts differ on whether the embedding lookup is included.
    embedding = arch.vocab_size * arch.hidden_size
    assert active * 0.97 <= arch.params_active <= (active + embedding) * 1.03


@pytest.mark.parametrize(("name", "kv_bytes"), sorted(KV_BYTES_PER_TOKEN_BF16.items()))
def test_kv_bytes_per_token(name: str, kv_bytes: int) -> None:
    arch = get_architecture(name)
    assert replica_shape(arch, 1).kv_bytes_per_token == kv_bytes
    assert replica_shape(arch, 1, "fp8").kv_bytes_per_token == kv_bytes / 2


def test_tensor_parallel_splits_weights_and_kv() -> None:
    arch = get_architecture("llama-3.1-70b")
    one, eight = replica_shape(arch, 1), replica_shape(arch, 8)
    assert eight.weight_bytes == pytest.approx(one.weight_bytes / 8, rel=1e-9)
    assert eight.kv_bytes_per_token == one.kv_bytes_per_token / 8
    # MLA's latent is shared by all heads: every GPU caches all of it.
    mla = get_architecture("deepseek-v3")
    assert replica_shape(mla, 8).kv_bytes_per_token == replica_shape(mla, 1).kv_bytes_per_token


def test_tensor_parallel_must_divide_heads() -> None:
    with pytest.raises(InputError, match="must divide"):
        replica_shape(get_architecture("llama-2-7b"), 3)


def test_prices_per_gpu_hour() -> None:
    prices = {name: get_gpu(name).price_per_gpu_hour_usd for name in gpu_names()}
    assert (prices["h100"], prices["h200"], prices["b200"]) == (8.0, 8.0, 13.0)
    assert 0 < prices["a100"] < prices["h100"]


def test_every_gpu_is_calibrated_and_unmeasured_ones_copy_h100() -> None:
    h100 = get_calibration("h100")
    for name in gpu_names():
        assert get_calibration(name)
    for name in ("h200", "b200"):
        assert get_calibration(name) == h100
    assert get_calibration("a100") != h100
