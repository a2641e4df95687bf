"""Closed-form time of a run of identical decode steps.

Step i of a run (i = 0, 1, ...) costs max over lines of a + b * (context0 + seqs * i): the
maximum of lines in i is convex, so the sum splits into at most len(lines) arithmetic series.
"""

from __future__ import annotations

import math

from sim.perf.base import DecodeLines


def step_time_s(lines: DecodeLines, context_tokens: int) -> float:
    """One decode step; the same arithmetic as the first term of `stretch_time_s`."""
    if len(lines) == 1:
        a, b = lines[0]
        return a + b * context_tokens
    return max(a + b * context_tokens for a, b in lines)


def _single_line_s(steps: int, first_s: float, growth_s: float) -> float:
    """A run's time with one line: its first step takes `first_s`, each next `growth_s` more.
    Shared by `stretch_time_s` and `steps_done_by` so that both round alike, term for term."""
    return steps * first_s + growth_s * (steps * (steps - 1) / 2)


def stretch_time_s(lines: DecodeLines, context0: int, seqs: int, steps: int) -> float:
    """Sum of `steps` decode steps starting at summed context `context0`, growing by `seqs`."""
    if steps <= 0:
        return 0.0
    if len(lines) == 1:
        a, b = lines[0]
        return _single_line_s(steps, a + b * context0, b * seqs)
    # Each line as p + q * i over the step index i.
    series = [(a + b * context0, b * seqs) for a, b in lines]
    total = 0.0
    i = 0
    while i < steps:
        p, q = max(series, key=lambda line: (line[0] + line[1] * i, line[1]))
        end = steps
        for p2, q2 in series:
            if q2 > q:  # a steeper line overtakes at the first i where p2 + q2 i > p + q i
                cross = math.floor((p - p2) / (q2 - q)) + 1
                if i < cross < end:
                    end = cross
        n = end - i
        total += n * (p + q * i) + q * (n * (n - 1) / 2)
        i = end
    return total


def steps_done_by(
    lines: DecodeLines, context0: int, seqs: int, steps: int, elapsed_s: float
) -> int:
    """The fewest steps (1..steps) of a run whose cumulative time exceeds `elapsed_s`.

    The step in flight at `elapsed_s` is the last of them: a run cut short by an arrival ends
    at the boundary of the step in flight.
    """
    if len(lines) == 1:  # invert the quadratic, then settle float rounding by stepping
        a, b = lines[0]
        first, growth = a + b * context0, b * seqs
        if growth > 0:
            half = 0.5 * growth
            root = (half - first + math.sqrt((first - half) ** 2 + 4 * half * elapsed_s)) / growth
        else:
            root = elapsed_s / first
        guess = min(max(int(root) + 1, 1), steps)
        while guess < steps and _single_line_s(guess, first, growth) <= elapsed_s:
            guess += 1
        while guess > 1 and _single_line_s(guess - 1, first, growth) > elapsed_s:
            guess -= 1
        return guess
    low, high = 1, steps
    while low < high:
        mid = (low + high) // 2
        if stretch_time_s(lines, context0, seqs, mid) > elapsed_s:
            high = mid
        else:
            low = mid + 1
    return low
