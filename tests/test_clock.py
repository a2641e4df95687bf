"""The clock's three queues (heap, entries due now, timers) run in one (time, priority, id)
order."""

from __future__ import annotations

from typing import Any

import simpy.core

from sim.clock import NORMAL, Clock, Timer, call_first_at, call_later


def test_normal_is_simpys() -> None:
    assert NORMAL == simpy.core.NORMAL


def test_same_time_entries_run_in_scheduling_order_whatever_their_queue() -> None:
    env = Clock()
    ran: list[tuple[float, str]] = []

    def note(name: str) -> None:
        ran.append((env.now, name))

    timer = Timer(env)

    def at_one(_: Any) -> None:
        note("heap")
        call_later(env, 0.0, lambda _: note("due 1"))
        timer.set(0.0, lambda _: note("timer"), None)
        call_later(env, 0.0, lambda _: note("due 2"))
        call_first_at(env, 1.0, lambda _: note("first"))  # priority -1: before the NORMAL ones

    call_later(env, 1.0, at_one)
    call_later(env, 1.0, lambda _: note("heap 2"))
    env.run()
    names = [name for _, name in ran]
    assert names == ["heap", "first", "heap 2", "due 1", "timer", "due 2"]
    assert all(t == 1.0 for t, _ in ran)
    assert env.scheduled == 6


def test_a_timer_set_again_runs_once_at_its_new_time() -> None:
    env = Clock()
    ran: list[tuple[float, str]] = []
    timers = [Timer(env) for _ in range(5)]
    for i, timer in enumerate(timers):
        timer.set(10.0 + i, lambda value: ran.append((env.now, value)), f"t{i}")
    timers[3].set(1.0, lambda value: ran.append((env.now, value)), "t3 earlier")
    timers[0].set(20.0, lambda value: ran.append((env.now, value)), "t0 later")
    call_later(env, 11.0, lambda _: ran.append((env.now, "call")))  # after t1's id: runs after it
    env.run(until=30.0)
    assert ran == [
        (1.0, "t3 earlier"),
        (11.0, "t1"),
        (11.0, "call"),
        (12.0, "t2"),
        (14.0, "t4"),
        (20.0, "t0 later"),
    ]
    assert env.now == 30.0


def test_run_until_leaves_later_entries_pending() -> None:
    env = Clock()
    ran: list[float] = []
    timer = Timer(env)
    timer.set(5.0, lambda _: ran.append(env.now), None)
    call_later(env, 3.0, lambda _: ran.append(env.now))
    env.run(until=4.0)
    assert ran == [3.0] and env.now == 4.0
    env.run(until=6.0)
    assert ran == [3.0, 5.0]
