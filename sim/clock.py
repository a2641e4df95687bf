"""Scheduling a callback on the simpy clock without a full simpy event (the hot path).

simpy's `Environment.step` pops an entry and reads only the popped object's `callbacks` and
`_ok`; a `Timeout` also validates its delay and carries an environment and a value property.
A run schedules one of these per iteration and per arrival, so the bare object is worth it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import NORMAL


class Wakeup:
    """What the callback receives: `_value` is the value it was scheduled with."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, callback: Callable[[Any], None], value: Any) -> None:
        self.callbacks = [callback]
        self._ok = True
        self._value = value


def call_later(
    env: simpy.Environment, delay_s: float, callback: Callable[[Any], None], value: Any = None
) -> None:
    """Run `callback(wakeup)` after `delay_s` simulated seconds (same-time order: scheduling)."""
    env.schedule(Wakeup(callback, value), NORMAL, delay_s)  # type: ignore[arg-type]
