"""KV-cache blocks of one replica: how many the running requests hold and how many are free."""

from __future__ import annotations


class KVBlocks:
    """Block accounting. The batching loop asks before it allocates, so counts never go negative."""

    __slots__ = ("capacity_blocks", "used_blocks")

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity_blocks = capacity_blocks
        self.used_blocks = 0

    def available(self) -> int:
        return self.capacity_blocks - self.used_blocks

    def allocate(self, blocks: int) -> None:
        self.used_blocks += blocks

    def release(self, blocks: int) -> None:
        self.used_blocks -= blocks
