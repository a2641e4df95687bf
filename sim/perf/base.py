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
