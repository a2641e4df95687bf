"""KV-cache blocks of one replica, with a prefix cache in the memory running requests leave free.

A block is either private to one running request (prompt blocks still being computed, decode
blocks, a partial last block) or shared: named by a block id, reference-counted, and kept after
its last user finishes, unreferenced, in least-recently-used order until its space is needed.
A request matches the longest run of leading block ids present; matched blocks are not
prefilled again.

Prompts are block chains stored as runs (`sim.workload.chains`): a run is consecutive block
indices of one owner (a system prompt, a session, a trace block), and a request that uses index
k of an owner uses every index of that owner below k. Hence per owner the cached blocks form
one range [start, cached_end), the referenced ones a leading part [start, max_ref), and each
unreferenced part becomes a *record* in LRU order, evicted from its deep end. Every operation
costs O(runs), not O(blocks): a 100k-token chat history is two runs, not 6,000 blocks.

The LRU order is a list read from a head index (a queue: records are appended, evicted from the
head): compiled, a list's items are read and counted natively, where a deque's methods are
Python calls. A record referenced again is marked dead (its owner set to None) and left in
place until eviction reaches it or dead ones outnumber the live, when the list is compacted; the
evicted records before the head are cut off once they are half of it. An OrderedDict keyed by
record cost about 1 us per eviction just to find its first record.
"""

from __future__ import annotations

from sim.request import Request
from sim.workload.chains import Runs


class _Record:
    """Unreferenced blocks [lo, hi) of one owner, in LRU order; owner None: referenced again
    since (dead) or evicted. A class, not a list: compiled (mypyc), its typed fields are read
    directly. `older`: the owner's next older (deeper) record, a chain that costs no list per
    owner; it may end in an evicted record, where a walk stops."""

    __slots__ = ("hi", "lo", "older", "owner")

    def __init__(self, owner: _Owner, lo: int, hi: int, older: _Record | None) -> None:
        self.owner: _Owner | None = owner
        self.lo = lo
        self.hi = hi
        self.older = older


class _Owner:
    """One owner's cached blocks [start, cached_end), the referenced part [start, max_ref).

    References are counted by where they end: `at_max` end at max_ref, the rest in `below`
    (end -> count), made only when references of one owner end at different depths. Most
    owners are used by one request at a time (a session) or all to the same depth (a system
    prompt): compiled, two int fields cost no dict operation and no boxed int per reference.
    """

    __slots__ = ("at_max", "below", "cached_end", "key", "max_ref", "newest", "start")

    def __init__(self, key: int, start: int) -> None:
        self.key = key
        self.start = start
        self.cached_end = start
        self.max_ref = start  # referenced blocks are [start, max_ref)
        self.at_max = 0  # references ending at max_ref (0: none at all, max_ref is start)
        self.below: dict[int, int] | None = None  # reference end < max_ref -> count
        self.newest: _Record | None = None  # its newest (shallowest) LRU record, if any

    def add_ref(self, end: int) -> None:
        """One more reference to [start, end) (end > start)."""
        max_ref = self.max_ref
        if end == max_ref:
            self.at_max += 1
        elif end > max_ref:
            if self.at_max:
                self._add_below(max_ref, self.at_max)
            self.max_ref = end
            self.at_max = 1
        else:
            self._add_below(end, 1)

    def move_ref(self, end: int, new_end: int) -> None:
        """One reference grows from `end` to `new_end` (> `end`)."""
        if end == self.max_ref and self.at_max == 1:  # the usual case: the deepest grows
            self.max_ref = new_end
            return
        self.drop_ref(end)
        self.add_ref(new_end)

    def drop_ref(self, end: int) -> None:
        if end != self.max_ref:
            below = self.below
            assert below is not None
            count = below[end] - 1
            if count:
                below[end] = count
            else:
                del below[end]
            return
        self.at_max -= 1
        if self.at_max:
            return
        below = self.below
        if below:  # the next deepest reference becomes the deepest
            self.max_ref = max(below)
            self.at_max = below.pop(self.max_ref)
        else:
            self.max_ref = self.start

    def _add_below(self, end: int, count: int) -> None:
        below = self.below
        if below is None:
            below = self.below = {}
        below[end] = below.get(end, 0) + count


class KVCache:
    __slots__ = (
        "_dead",
        "_head",
        "_lru",
        "_owners",
        "cached_total",
        "capacity_blocks",
        "prefix_caching",
        "private_blocks",
        "unreferenced",
    )

    def __init__(self, capacity_blocks: int, prefix_caching: bool = True) -> None:
        self.capacity_blocks = capacity_blocks
        self.prefix_caching = prefix_caching
        self.private_blocks = 0
        self.cached_total = 0  # shared blocks, referenced or not
        self.unreferenced = 0  # shared blocks no running request uses
        self._owners: dict[int, _Owner] = {}
        self._lru: list[_Record] = []  # oldest first, from _head on (those before: evicted)
        self._head = 0
        self._dead = 0  # dead records in _lru[_head:]

    # ------------------------------------------------------------------------------- levels
    @property
    def used_blocks(self) -> int:
        """Blocks held by running requests."""
        return self.private_blocks + self.cached_total - self.unreferenced

    @property
    def cached_blocks(self) -> int:
        """Unreferenced blocks kept for reuse (freed as soon as space is needed)."""
        return self.unreferenced

    def available(self) -> int:
        """Blocks a request could be given now (free ones plus evictable cached ones)."""
        return self.capacity_blocks - self.private_blocks - self.cached_total + self.unreferenced

    # ------------------------------------------------------------------------------- private
    def allocate(self, blocks: int) -> None:
        """Give running requests `blocks` private blocks, evicting cached ones if needed."""
        self.private_blocks += blocks
        over = self.private_blocks + self.cached_total - self.capacity_blocks
        if over > 0:
            self._evict(over)

    def _evict(self, blocks: int) -> None:
        """Trim the oldest records from their deep ends."""
        self.unreferenced -= blocks
        self.cached_total -= blocks
        lru = self._lru
        head = self._head
        while blocks:
            record = lru[head]
            owner = record.owner
            if owner is None:  # referenced again since it was made
                head += 1
                self._dead -= 1
                continue
            lo, hi = record.lo, record.hi
            if hi - lo > blocks:
                record.hi = owner.cached_end = hi - blocks
                break
            head += 1
            owner.cached_end = lo  # the oldest record of an owner is its deepest part
            record.owner = record.older = None  # evicted (the records older were evicted)
            if lo == owner.start and not owner.at_max:
                del self._owners[owner.key]
            blocks -= hi - lo
        if head > 64 and 2 * head > len(lru):
            del lru[:head]
            head = 0
        self._head = head

    # ------------------------------------------------------------------------------- prefix
    def match(self, runs: Runs, limit: int) -> tuple[int, int]:
        """(leading blocks present, how many of those are unreferenced), at most `limit`."""
        if not self.prefix_caching:
            return 0, 0
        owners = self._owners
        hit = idle = 0
        for owner_id, lo, hi in runs:
            owner = owners.get(owner_id)
            if owner is None or owner.start != lo:
                break
            end = lo + limit - hit  # min() of three costs more than the comparisons (hot path)
            if owner.cached_end < end:
                end = owner.cached_end
            if hi < end:
                end = hi
            if end <= lo:
                break
            hit += end - lo
            busy_end = owner.max_ref
            idle += end - (busy_end if busy_end > lo else lo) if end > busy_end else 0
            if end < hi:
                break
        return hit, idle

    def acquire(self, request: Request, hit: int) -> None:
        """Reference the first `hit` blocks of the request's chain (found by `match`)."""
        left = hit
        for owner_id, lo, hi in request.block_runs or ():
            if left <= 0:
                break
            end = lo + left if lo + left < hi else hi
            left -= end - lo
            owner = self._owners[owner_id]
            if end > owner.max_ref:
                self._trim_records(owner, end)
            owner.add_ref(end)
        request.shared_blocks = hit

    def _trim_records(self, owner: _Owner, end: int) -> None:
        """Blocks below `end` are referenced again: they leave the LRU records."""
        record = owner.newest
        while record is not None and record.owner is not None and record.lo < end:
            self.unreferenced -= min(end, record.hi) - record.lo
            if record.hi > end:
                record.lo = end
                break
            record.owner = None
            self._dead += 1
            record = record.older
        owner.newest = record
        if self._dead > 64 and 2 * self._dead > len(self._lru) - self._head:
            self._lru = [record for record in self._lru[self._head :] if record.owner is not None]
            self._head = 0
            self._dead = 0

    def publish(self, request: Request, computed_blocks: int) -> None:
        """Share the request's private blocks whose content is now computed, in order.

        A block another request already shares stays private (a duplicate), and so do the
        blocks after it, so that a request's shared blocks are always a leading run.
        """
        runs = request.block_runs
        if runs is None or not self.prefix_caching:
            return
        shared = request.shared_blocks
        position = 0  # blocks of the chain before the current run
        owners = self._owners
        for owner_id, lo, hi in runs:
            length = hi - lo
            if shared >= computed_blocks:
                break
            if shared >= position + length:
                position += length
                continue
            held_end = lo + (shared - position)  # this request references [lo, held_end)
            target = lo + computed_blocks - position
            if target > hi:
                target = hi
            owner = owners.get(owner_id)
            if owner is None:
                owner = owners[owner_id] = _Owner(owner_id, lo)
            if owner.start != lo or owner.cached_end != held_end:
                break  # someone else shares these blocks already: ours stay private
            if held_end > lo:
                owner.move_ref(held_end, target)
            else:
                owner.add_ref(target)
            owner.cached_end = target
            self.cached_total += target - held_end
            self.private_blocks -= target - held_end
            shared += target - held_end
            if target < hi:
                break
            position += length
        request.shared_blocks = shared

    def release(self, request: Request, held_blocks: int) -> None:
        """Return all `held_blocks` of a request leaving the batch (finished or preempted).

        Shared blocks stay cached; the deepest become least recent, so eviction trims prefixes
        from their ends.
        """
        shared = request.shared_blocks
        self.private_blocks -= held_blocks - shared
        if not shared:
            return
        runs = request.block_runs
        assert runs is not None
        last = 0  # the deepest run it references, up to `end`
        end = runs[0][1] + shared
        while end > runs[last][2]:
            end += runs[last + 1][1] - runs[last][2]
            last += 1
        owners = self._owners
        lru = self._lru
        for index in range(last, -1, -1):  # deepest owner first: its record is older
            owner_id, _, hi = runs[index]
            owner = owners[owner_id]
            before = owner.max_ref
            owner.drop_ref(end if index == last else hi)
            after = owner.max_ref
            if after < before:
                record = owner.newest = _Record(owner, after, before, owner.newest)
                lru.append(record)
                self.unreferenced += before - after
        request.shared_blocks = 0
