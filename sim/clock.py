"""The simulation clock: simpy's environment with a run loop that also takes bare callbacks.

A run schedules one wake-up per iteration and per arrival, millions in all. A simpy `Timeout`
costs an event object, a callbacks list, a priority check and an `_ok` check per wake-up;
`call_later` instead schedules an `Entry` (time, priority, id, callback, value) and `Clock.run`
calls the callback with the value. simpy events (timeouts of the slot model and of progress
reports) are entries too, run as in `simpy.Environment.step`. Entries run in (time, priority,
id) order; ids are unique.

The queues were the loop's largest single cost, so:
- entries are native objects compared on their fields in compiled code (a heap of tuples
  compared them through generic object comparisons, two per level);
- an entry due now (a zero delay: an outcome delivered as its own event) waits in a FIFO;
- a `Timer` (a replica's iteration end) sits in a small heap of its own, and setting it again
  moves it there instead of leaving a stale entry to pop (a cut decode run, once per request).
The run loop takes the earliest of the three queues' heads, so the order is one heap's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import simpy

# simpy.core.NORMAL, the priority of every `call_later` entry and `Timer`, as a literal: the
# compiled build reads it without a global lookup (tests check it is simpy's).
NORMAL: Final = 1


def _ignore(_: Any) -> None:
    """An unset timer's callback."""


class Entry:
    """`callback(value)` due at `time_s`; `index` is its place in its heap (-1: not in one)."""

    def __init__(
        self,
        time_s: float,
        priority: int,
        eid: int,
        callback: Callable[[Any], None],
        value: Any,
    ) -> None:
        self.time_s = time_s
        self.priority = priority
        self.eid = eid
        self.callback = callback
        self.value = value
        self.index = -1


class Clock(simpy.Environment):
    # The time as a plain attribute: every event reads `env.now`, often several times, and
    # simpy's read-only property cost a call each time. simpy's own `_now` maps to it.
    now: float = 0.0

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        self._heap: list[Entry] = []
        self._due: deque[Entry] = deque()  # entries due now, in scheduling order
        self._timers: list[Entry] = []  # a heap of `Timer`s' entries
        self.scheduled = 0  # entries scheduled so far: the next entry's id

    @property
    def _now(self) -> float:
        return self.now

    @_now.setter
    def _now(self, value: float) -> None:
        self.now = value

    def schedule(self, event: simpy.Event, priority: Any = NORMAL, delay: Any = 0) -> None:
        """simpy's: its events are entries, numbered in the same sequence."""
        entry = Entry(self.now + delay, priority, self._take_id(), _run_event, event)
        _push(self._heap, entry)

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
        heap = self._heap
        due = self._due
        timers = self._timers
        while True:
            # The earliest of the heap's head, the first timer and the first entry due now.
            if heap:
                entry = heap[0]
                from_timers = bool(timers) and _before(timers[0], entry)
                if from_timers:
                    entry = timers[0]
            elif timers:
                entry = timers[0]
                from_timers = True
            elif due:
                entry = due[0]
                from_timers = False
            else:
                break
            if due and (entry is due[0] or _before(due[0], entry)):
                entry = due.popleft()  # due now: the clock stands
            elif entry.time_s >= at:
                break
            else:
                _pop(timers if from_timers else heap)
                self.now = entry.time_s
            entry.callback(entry.value)
        if until is not None:
            self.now = at


def _run_event(event: simpy.Event) -> None:
    """A simpy event's turn, as in `simpy.Environment.step`."""
    callbacks = event.callbacks
    event.callbacks = None  # type: ignore[assignment]  # simpy's mark of a processed event
    for callback in callbacks:
        callback(event)
    if not event._ok and not hasattr(event, "_defused"):
        raise event._value


def call_later(
    env: Clock, delay_s: float, callback: Callable[[Any], None], value: Any = None
) -> None:
    """Run `callback(value)` after `delay_s` simulated seconds (same-time order: scheduling).

    Only a `Clock` runs these entries; a plain simpy environment would not know them."""
    now = env.now
    entry = Entry(now + delay_s, NORMAL, env._take_id(), callback, value)
    if entry.time_s == now:
        env._due.append(entry)
    else:
        _push(env._heap, entry)


def call_first_at(env: Clock, at_s: float, callback: Callable[[Any], None]) -> None:
    """Run `callback(None)` at exactly `at_s`, before every other entry due then (simpy's
    priorities are 0 and 1): a sampler at t1 closes the interval [t0, t1), whatever else
    happens at t1."""
    _push(env._heap, Entry(at_s, -1, env._take_id(), callback, None))


class Timer:
    """A wake-up that is moved, not added to, when set again: at most one is pending.

    Setting it numbers it like `call_later` does, so it runs where `call_later` would have
    put it, and a timer set again runs only at its new time (the old one would have found
    itself superseded)."""

    def __init__(self, env: Clock) -> None:
        self.env = env
        self.entry = Entry(math.inf, NORMAL, 0, _ignore, None)

    def set(self, delay_s: float, callback: Callable[[Any], None], value: Any) -> None:
        """Run `callback(value)` after `delay_s` simulated seconds, instead of whatever was
        pending."""
        env = self.env
        entry = self.entry
        entry.time_s = env.now + delay_s
        entry.eid = env._take_id()
        entry.callback = callback
        entry.value = value
        heap = env._timers
        if entry.index < 0:
            entry.index = len(heap)
            heap.append(entry)
        _sift_up(heap, entry.index)
        _sift_down(heap, entry.index)


def _before(a: Entry, b: Entry) -> bool:
    """Does `a` run before `b`? (Ids are unique.)"""
    if a.time_s != b.time_s:
        return a.time_s < b.time_s
    if a.priority != b.priority:
        return a.priority < b.priority
    return a.eid < b.eid


def _push(heap: list[Entry], entry: Entry) -> None:
    entry.index = len(heap)
    heap.append(entry)
    _sift_up(heap, entry.index)


def _sift_up(heap: list[Entry], index: int) -> None:
    """Move the entry at `index` towards the root while it runs before its parent."""
    entry = heap[index]
    while index > 0:
        parent_index = (index - 1) >> 1
        parent = heap[parent_index]
        if not _before(entry, parent):
            break
        heap[index] = parent
        parent.index = index
        index = parent_index
    heap[index] = entry
    entry.index = index


def _sift_down(heap: list[Entry], index: int) -> None:
    """Move the entry at `index` towards the leaves while a child runs before it."""
    entry = heap[index]
    size = len(heap)
    while True:
        child_index = 2 * index + 1
        if child_index >= size:
            break
        child = heap[child_index]
        if child_index + 1 < size and _before(heap[child_index + 1], child):
            child_index += 1
            child = heap[child_index]
        if not _before(child, entry):
            break
        heap[index] = child
        child.index = index
        index = child_index
    heap[index] = entry
    entry.index = index


def _pop(heap: list[Entry]) -> Entry:
    """Take the first entry out of the heap."""
    first = heap[0]
    last = heap.pop()
    if last is not first:
        heap[0] = last
        last.index = 0
        _sift_down(heap, 0)
    first.index = -1
    return first
