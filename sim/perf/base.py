"""The interface between a replica's batching loop and an iteration-time model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# A decode-only iteration costs max(a + b * context_tokens for (a, b) in lines): every roofline
# term is linear in the summed context, so a run of identical decode steps has a closed-form time.
DecodeLines = tuple[tuple[float, float], ...]


class BatchTimeModel(Protocol):
    """Prices one continuous-batching iteration."""

    def decode_lines(self, decode_seqs: int) -> DecodeLines:
        """Lines whose maximum is a decode-only step time for `decode_seqs` sequences."""
        ...

    def iteration_time_s(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        """Time of one iteration with decodes and prefill chunks (chunk_tokens, context_before).

        With no prefill chunks it equals the maximum of `decode_lines(decode_seqs)` at
        `decode_context_tokens`, computed the same way.
        """
        ...

    def prefill_run_ends_s(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        chunk_tokens: int,
        context_before: int,
        prefill_left: int,
        iterations: int,
    ) -> list[float]:
        """Cumulative ends of `iterations` iterations that each prefill the next `chunk_tokens`
        of one prompt (`prefill_left` in all, `context_before` already in KV) beside the same
        decodes, whose summed context grows by `decode_seqs` an iteration; each iteration
        priced as `iteration_time_s` prices it alone."""
        ...


class PricesEachIteration:
    """`prefill_run_ends_s` by calling `iteration_time_s` once per iteration: for models with
    no faster way (the tests' hand-made models)."""

    def prefill_run_ends_s(
        self: BatchTimeModel,
        decode_seqs: int,
        decode_context_tokens: int,
        chunk_tokens: int,
        context_before: int,
        prefill_left: int,
        iterations: int,
    ) -> list[float]:
        ends_s = []
        total_s = 0.0
        context, before, left = decode_context_tokens, context_before, prefill_left
        for _ in range(iterations):
            tokens = chunk_tokens if chunk_tokens < left else left
            total_s += self.iteration_time_s(decode_seqs, context, ((tokens, before),))
            ends_s.append(total_s)
            context += decode_seqs
            before += tokens
            left -= tokens
        return ends_s
