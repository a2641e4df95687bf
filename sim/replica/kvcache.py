"""KV-cache blocks of one replica, with a prefix cache in the memory running requests leave free.

A block is either private to one running request (prompt blocks still being computed, decode
blocks, a partial last block) or shared: named by a block id (the id names the whole prefix up
to the block's end), reference-counted, and kept after its last user finishes, unreferenced, in
least-recently-used order until its space is needed. A request matches the longest run of
leading block ids present; matched blocks are not prefilled again.

The batching loop asks `available()` before it allocates, so counts never go negative.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sim.request import Request


class KVCache:
    __slots__ = (
        "_refs",
        "_unreferenced",
        "capacity_blocks",
        "evictions",
        "prefix_caching",
        "private_blocks",
    )

    def __init__(self, capacity_blocks: int, prefix_caching: bool = True) -> None:
        self.capacity_blocks = capacity_blocks
        self.prefix_caching = prefix_caching
        self.private_blocks = 0
        self._refs: dict[int, int] = {}  # block id -> running requests using it
        self._unreferenced: OrderedDict[int, None] = OrderedDict()  # ref 0, oldest first
        self.evictions = 0

    # ------------------------------------------------------------------------------- levels
    @property
    def used_blocks(self) -> int:
        """Blocks held by running requests."""
        return self.private_blocks + len(self._refs) - len(self._unreferenced)

    @property
    def cached_blocks(self) -> int:
        """Unreferenced blocks kept for reuse (freed as soon as space is needed)."""
        return len(self._unreferenced)

    def available(self) -> int:
        """Blocks a request could be given now (free ones plus evictable cached ones)."""
        return self.capacity_blocks - self.private_blocks - len(self._refs) + len(self._unreferenced)

    # ------------------------------------------------------------------------------- private
    def allocate(self, blocks: int) -> None:
        """Give running requests `blocks` private blocks, evicting cached ones if needed."""
        self.private_blocks += blocks
        over = self.private_blocks + len(self._refs) - self.capacity_blocks
        if over > 0:
            self._evict(over)

    def _evict(self, blocks: int) -> None:
        unreferenced, refs = self._unreferenced, self._refs
        for _ in range(blocks):
            block_id, _ = unreferenced.popitem(last=False)
            del refs[block_id]
        self.evictions += blocks

    # ------------------------------------------------------------------------------- prefix
    def match(self, block_ids: Sequence[int], limit: int) -> tuple[int, int]:
        """(leading blocks present, how many of those are unreferenced) over at most `limit`."""
        if not self.prefix_caching:
            return 0, 0
        refs = self._refs
        hit = idle = 0
        for block_id in block_ids[:limit]:
            count = refs.get(block_id)
            if count is None:
                break
            hit += 1
            idle += count == 0
        return hit, idle

    def acquire(self, request: Request, hit: int) -> None:
        """Reference the first `hit` blocks of the request's ids (found by `match`)."""
        refs, unreferenced = self._refs, self._unreferenced
        assert request.block_ids is not None or hit == 0
        for block_id in (request.block_ids or ())[:hit]:
            count = refs[block_id]
            if count == 0:
                del unreferenced[block_id]
            refs[block_id] = count + 1
        request.shared_blocks = hit

    def publish(self, request: Request, computed_blocks: int) -> None:
        """Share the request's private blocks whose content is now computed, in order.

        A block another request has already published stays private (a duplicate), and so do
        the blocks after it, so that a request's shared blocks are always a leading run.
        """
        ids = request.block_ids
        if ids is None or not self.prefix_caching:
            return
        refs = self._refs
        shared = request.shared_blocks
        upto = min(computed_blocks, len(ids))
        while shared < upto and ids[shared] not in refs:
            refs[ids[shared]] = 1
            shared += 1
        self.private_blocks -= shared - request.shared_blocks
        request.shared_blocks = shared

    def release(self, request: Request, held_blocks: int) -> None:
        """Return all `held_blocks` of a request leaving the batch (finished or preempted).

        Shared blocks stay cached, the deepest block of the prefix least recent, so eviction
        trims prefixes from their ends.
        """
        shared = request.shared_blocks
        self.private_blocks -= held_blocks - shared
        if shared:
            refs, unreferenced = self._refs, self._unreferenced
            ids = request.block_ids
            assert ids is not None
            for i in range(shared - 1, -1, -1):
                block_id = ids[i]
                count = refs[block_id] - 1
                refs[block_id] = count
                if count == 0:
                    unreferenced[block_id] = None
            request.shared_blocks = 0
