"""The prefix cache against a small reference model of LRU with prefix matching."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.replica.kvcache import KVCache
from sim.request import Request
from sim.workload.chains import Runs, block_ids


@dataclass
class ReferenceCache:
    """Blocks (owner, index) with a reference count and a last-use clock; eviction takes the
    unreferenced block with the oldest clock. Deliberately naive: lists and linear scans."""

    capacity: int
    private: int = 0
    refs: dict[tuple[int, int], int] = field(default_factory=dict)
    last_use: dict[tuple[int, int], int] = field(default_factory=dict)
    clock: int = 0

    def available(self) -> int:
        idle = sum(1 for c in self.refs.values() if c == 0)
        return self.capacity - self.private - len(self.refs) + idle

    def match(self, ids: list[tuple[int, int]], limit: int) -> int:
        hit = 0
        for block_id in ids[:limit]:
            if block_id not in self.refs:
                break
            hit += 1
        return hit

    def admit(self, ids: list[tuple[int, int]], hit: int, blocks: int) -> None:
        for block_id in ids[:hit]:
            self.refs[block_id] += 1
        self.private += blocks - hit
        while self.private + len(self.refs) > self.capacity:
            idle = [b for b, c in self.refs.items() if c == 0]
            oldest = min(idle, key=lambda b: self.last_use[b])
            del self.refs[oldest], self.last_use[oldest]

    def publish(self, ids: list[tuple[int, int]], shared: int, upto: int) -> int:
        while shared < min(upto, len(ids)) and ids[shared] not in self.refs:
            self.refs[ids[shared]] = 1
            self.private -= 1
            shared += 1
        return shared

    def release(self, ids: list[tuple[int, int]], shared: int, blocks: int) -> None:
        self.private -= blocks - shared
        for block_id in reversed(ids[:shared]):
            self.refs[block_id] -= 1
            if self.refs[block_id] == 0:
                self.clock += 1
                self.last_use[block_id] = self.clock


def _chain(prefix: int, length: int, branch: int) -> Runs:
    """A prompt of `length` blocks: the first `prefix` are a shared system prompt (owner 0),
    the rest to a history owned by (branch, prefix), which always starts at the same index."""
    shared = min(prefix, length)
    runs = [(0, 0, shared)] if shared else []
    if length > shared:
        runs.append((1 + 100 * branch + shared, shared, length))
    return tuple(runs)


operations = st.lists(
    st.tuples(
        st.sampled_from(["admit", "finish"]),
        st.integers(0, 6),  # prefix shared with family 0
        st.integers(1, 10),  # prompt blocks
        st.integers(0, 5),  # branch
        st.integers(0, 3),  # extra private blocks (decode)
        st.integers(0, 20),  # which running request finishes
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(12, 40), ops=operations)
def test_cache_matches_reference(capacity: int, ops: list[tuple[int, ...]]) -> None:
    cache = KVCache(capacity)
    reference = ReferenceCache(capacity)
    running: list[tuple[Request, int]] = []
    for n, (op, prefix, length, branch, extra, pick) in enumerate(ops):
        if op == "admit":
            runs = _chain(prefix, length, branch)
            ids = block_ids(runs)
            blocks = length + extra
            hit, idle = cache.match(runs, length - 1)
            assert hit == reference.match(ids, length - 1)
            if blocks - hit + idle > cache.available():
                continue
            assert cache.available() == reference.available()
            request = Request(n, "t", "a", "m", "standard", 0.0, length * 16, 1, runs)
            if hit:
                cache.acquire(request, hit)
            cache.allocate(blocks - hit)
            reference.admit(ids, hit, blocks)
            cache.publish(request, length)  # prefill done
            assert request.shared_blocks == reference.publish(ids, hit, length)
            running.append((request, blocks))
        elif running:
            request, blocks = running.pop(pick % len(running))
            shared = request.shared_blocks
            assert request.block_runs is not None
            cache.release(request, blocks)
            reference.release(block_ids(request.block_runs), shared, blocks)
        assert cache.available() == reference.available()
        assert cache.used_blocks == reference.private + sum(1 for c in reference.refs.values() if c)
        assert cache.cached_blocks == sum(1 for c in reference.refs.values() if c == 0)
        assert 0 <= cache.used_blocks <= capacity


def test_lru_evicts_the_least_recent_prefix_from_its_end() -> None:
    cache = KVCache(6)
    old = Request(0, "t", "a", "m", "standard", 0.0, 48, 1, ((1, 0, 3),))
    new = Request(1, "t", "a", "m", "standard", 0.0, 48, 1, ((7, 0, 3),))
    for request in (old, new):
        cache.allocate(3)
        cache.publish(request, 3)
        cache.release(request, 3)
    assert cache.cached_blocks == 6 and cache.used_blocks == 0
    cache.allocate(2)  # evicts the two deepest blocks of the older prefix
    assert cache.match(((1, 0, 3),), 3) == (1, 1)
    assert cache.match(((7, 0, 3),), 3) == (3, 3)
