"""The simulation clock: simpy's environment with a run loop that also takes bare callbacks.

A run schedules one wake-up per iteration and per arrival, millions in all. A simpy `Timeout`
costs an event object, a callbacks list, a priority check and an `_ok` check per wake-up;
`call_later` instead puts `(time, priority, id, callback, value)` on simpy's own queue, beside
simpy's `(time, priority, id, event)` entries (ids are unique, so the heap never compares past
them), and `Clock.run` calls the callback with the value. simpy events (timeouts of the slot
model and of progress reports) still run as in `simpy.Environment.step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL


class Clock(simpy.Environment):
    # The time as a plain attribute: every event reads `env.now`, often several times, and
    # simpy's read-only property cost a call each time. simpy's own `_now` maps to it.
    now: float = 0.0

    @property
    def _now(self) -> float:
        return self.now

    @_now.setter
    def _now(self, value: float) -> None:
        self.now = value

    def run(self, until: Any = None) -> None:
        """Process every entry due strictly before `until` (simpy's rule), then stand at it;
        with no `until`, until nothing is left."""
        at = math.inf if until is None else float(until)
        if at <= self.now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        # simpy types its queue as 4-tuples; it holds `call_later`'s 5-tuples too (a compiled
        # build checks declared types at run time)
        queue: list[Any] = self._queue
        while queue:
            # Typed locals: compiled, the entry's fields are read as a tuple's and the time
            # compared as a float, not through generic object operations.
            entry: tuple[Any, ...] = queue[0]
            time_s: float = entry[0]
            if time_s >= at:
                break
            heappop(queue)
            self.now = time_s
            if len(entry) == 5:
                entry[3](entry[4])
                continue
            event = entry[3]
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                raise event._value
        if until is not None:
            self.now = at


def call_later(
    env: Clock, delay_s: float, callback: Callable[[Any], None], value: Any = None
) -> None:
    """Run `callback(value)` after `delay_s` simulated seconds (same-time order: scheduling).

    Only a `Clock` runs these entries; a plain simpy environment would not know them."""
    heappush(env._queue, (env.now + delay_s, NORMAL, next(env._eid), callback, value))  # type: ignore[misc]


def call_first_at(env: Clock, at_s: float, callback: Callable[[Any], None]) -> None:
    """Run `callback(None)` at exactly `at_s`, before every other entry due then (simpy's
    priorities are 0 and 1): a sampler at t1 closes the interval [t0, t1), whatever else
    happens at t1."""
    heappush(env._queue, (at_s, -1, next(env._eid), callback, None))  # type: ignore[misc]
