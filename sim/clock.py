"""The simulation clock: simpy's environment with a run loop that also takes bare callbacks.

A run schedules one wake-up per iteration and per arrival, millions in all. A simpy `Timeout`
costs an event object, a callbacks list, a priority check and an `_ok` check per wake-up;
`call_later` instead puts `(time, priority, id, callback, value)` on simpy's own queue, beside
simpy's `(time, priority, id, event)` entries (ids are unique, so the heap never compares past
them), and `Clock.run` calls the callback with the value. simpy events (timeouts of the slot
model and of progress reports) still run as in `simpy.Environment.step`.

Two kinds of entries stay off that heap, whose pushes and pops (thousands of entries, one
tuple comparison per level) were the loop's largest single cost:
- an entry due now (a zero delay: an outcome delivered as its own event) waits in a FIFO;
- a `Timer` (a replica's iteration end) sits in a small heap of its own, and setting it again
  moves it there instead of leaving a stale entry to pop (a cut decode run, once per request).
The run loop takes the earliest of the three by the same (time, priority, id) key, so the
order is the one a single heap gave.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, Final

import simpy

# simpy.core.NORMAL, the priority of every `call_later` entry and `Timer`, as a literal: the
# compiled build reads it without a global lookup (tests check it is simpy's).
NORMAL: Final = 1


class Clock(simpy.Environment):
    # The time as a plain attribute: every event reads `env.now`, often several times, and
    # simpy's read-only property cost a call each time. simpy's own `_now` maps to it.
    now: float = 0.0

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        # simpy types its queue as 4-tuples; it holds `call_later`'s 5-tuples too (a compiled
        # build checks declared types at run time)
        self._queue: list[Any] = []
        self._due: deque[tuple[int, Callable[[Any], None], Any]] = deque()  # (id, callback, value)
        self._timers: list[Timer] = []  # a heap, each timer knowing its place
        self.scheduled = 0  # entries scheduled so far: the next entry's id

    @property
    def _now(self) -> float:
        return self.now

    @_now.setter
    def _now(self, value: float) -> None:
        self.now = value

    def schedule(self, event: simpy.Event, priority: Any = NORMAL, delay: Any = 0) -> None:
        """simpy's, numbering its events in the same sequence as the callbacks."""
        heappush(self._queue, (self.now + delay, priority, self._take_id(), event))

    def _take_id(self) -> int:
        eid = self.scheduled
        self.scheduled = eid + 1
        return eid

    def run(self, until: Any = None) -> None:
        """Process every entry due strictly before `until` (simpy's rule), then stand at it;
        with no `until`, until nothing is left."""
        at = math.inf if until is None else float(until)
        if at <= self.now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        queue = self._queue
        due = self._due
        timers = self._timers
        while True:
            # The earliest of the heap's head, the first timer and the first entry due now.
            source = _HEAP
            if queue:
                # Typed locals: compiled, the entry's fields are read as a tuple's and the
                # time compared as a float, not through generic object operations.
                head: tuple[Any, ...] = queue[0]
                time_s: float = head[0]
                priority: int = head[1]
                eid: int = head[2]
            else:
                time_s, priority, eid = math.inf, NORMAL, 0
            if timers:
                timer = timers[0]
                if _earlier(timer.time_s, NORMAL, timer.eid, time_s, priority, eid):
                    source = _TIMER
                    time_s, priority, eid = timer.time_s, NORMAL, timer.eid
            if due and _earlier(self.now, NORMAL, due[0][0], time_s, priority, eid):
                _, callback, value = due.popleft()
                callback(value)
                continue
            if time_s >= at:
                break
            self.now = time_s
            if source == _TIMER:
                timer = _pop_timer(timers)
                timer.callback(timer.value)
                continue
            heappop(queue)
            if len(head) == 5:
                head[3](head[4])
                continue
            event = head[3]
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                raise event._value
        if until is not None:
            self.now = at


_HEAP: Final = 0
_TIMER: Final = 1


def _earlier(
    time_s: float, priority: int, eid: int, other_s: float, other_priority: int, other_eid: int
) -> bool:
    """Does the entry keyed (time_s, priority, eid) run before the other? (Ids are unique.)"""
    if time_s != other_s:
        return time_s < other_s
    if priority != other_priority:
        return priority < other_priority
    return eid < other_eid


def call_later(
    env: Clock, delay_s: float, callback: Callable[[Any], None], value: Any = None
) -> None:
    """Run `callback(value)` after `delay_s` simulated seconds (same-time order: scheduling).

    Only a `Clock` runs these entries; a plain simpy environment would not know them."""
    time_s = env.now + delay_s
    eid = env._take_id()
    if time_s == env.now:
        env._due.append((eid, callback, value))
    else:
        heappush(env._queue, (time_s, NORMAL, eid, callback, value))


def call_first_at(env: Clock, at_s: float, callback: Callable[[Any], None]) -> None:
    """Run `callback(None)` at exactly `at_s`, before every other entry due then (simpy's
    priorities are 0 and 1): a sampler at t1 closes the interval [t0, t1), whatever else
    happens at t1."""
    heappush(env._queue, (at_s, -1, env._take_id(), callback, None))


def _ignore(_: Any) -> None:
    """An unset timer's callback."""


class Timer:
    """A wake-up that is moved, not added to, when set again: at most one is pending.

    Setting it numbers it like `call_later` does, so it runs where `call_later` would have
    put it, and a timer set again runs only at its new time (the old one would have found
    itself superseded)."""

    def __init__(self, env: Clock) -> None:
        self.env = env
        self.time_s = math.inf
        self.eid = 0
        self.index = -1  # its place in the clock's timer heap; -1: not pending
        self.callback: Callable[[Any], None] = _ignore
        self.value: Any = None

    def set(self, delay_s: float, callback: Callable[[Any], None], value: Any) -> None:
        """Run `callback(value)` after `delay_s` simulated seconds, instead of whatever was
        pending."""
        env = self.env
        self.time_s = env.now + delay_s
        self.eid = env._take_id()
        self.callback = callback
        self.value = value
        heap = env._timers
        if self.index < 0:
            self.index = len(heap)
            heap.append(self)
        _sift_up(heap, self.index)
        _sift_down(heap, self.index)


def _before(a: Timer, b: Timer) -> bool:
    return a.time_s < b.time_s or (a.time_s == b.time_s and a.eid < b.eid)


def _sift_up(heap: list[Timer], index: int) -> None:
    """Move the timer at `index` towards the root while it runs before its parent."""
    timer = heap[index]
    while index > 0:
        parent_index = (index - 1) >> 1
        parent = heap[parent_index]
        if not _before(timer, parent):
            break
        heap[index] = parent
        parent.index = index
        index = parent_index
    heap[index] = timer
    timer.index = index


def _sift_down(heap: list[Timer], index: int) -> None:
    """Move the timer at `index` towards the leaves while a child runs before it."""
    timer = heap[index]
    size = len(heap)
    while True:
        child_index = 2 * index + 1
        if child_index >= size:
            break
        child = heap[child_index]
        if child_index + 1 < size and _before(heap[child_index + 1], child):
            child_index += 1
            child = heap[child_index]
        if not _before(child, timer):
            break
        heap[index] = child
        child.index = index
        index = child_index
    heap[index] = timer
    timer.index = index


def _pop_timer(heap: list[Timer]) -> Timer:
    """Take the first timer out of the heap."""
    first = heap[0]
    last = heap.pop()
    if last is not first:
        heap[0] = last
        last.index = 0
        _sift_down(heap, 0)
    first.index = -1
    return first
