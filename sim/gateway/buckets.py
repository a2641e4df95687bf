"""Token buckets: the three limits of one (account, model id), and the request cap of an account.

Everything is computed lazily, when a request touches the state (or the sampler reads it):
levels are kept as of `base_s` and refilled on reading; limit updates run period by period
at the period boundaries the state has passed since it was last touched. No event is ever
scheduled per account, so 2,000 idle accounts cost nothing.

A level is rebased (refilled to a time and stored) only at a charge or a limit change, both
set by the requests alone: reading the state at any time (sampling) changes nothing that a
later request sees.
"""

from __future__ import annotations

import math
from collections import deque

from sim.gateway.limits.base import LimitPolicy


class TokenBuckets:
    """Prompt, uncached prompt and generated token buckets of one (account, model id).

    A bucket holds at most one minute of its limit, refills continuously at the limit's rate
    and may go into debt; a request is refused while any of the three is empty (level <= 0).

    The levels and uses are attributes of their own, not lists indexed by kind: every attempt
    reads and writes them, and rebuilding or boxing a list's floats each time cost about 2% of
    the compiled build's event loop.
    """

    __slots__ = (
        "attempts",
        "base_s",
        "bounded",
        "generated_level",
        "generated_total",
        "generated_used",
        "limit_tpm",
        "peaks",
        "period",
        "period_end_s",
        "period_s",
        "policy",
        "prompt_level",
        "prompt_total",
        "prompt_used",
        "rate_limited",
        "uncached_level",
        "uncached_total",
        "uncached_used",
    )

    def __init__(self, policy: LimitPolicy, now_s: float) -> None:
        self.policy = policy
        self.limit_tpm = list(policy.start_tpm())
        self.bounded = all(math.isfinite(limit) for limit in self.limit_tpm)
        # Levels as of base_s, tokens: a new bucket is full.
        self.prompt_level, self.uncached_level, self.generated_level = self.limit_tpm
        self.base_s = now_s
        period_s = policy.update_period_s
        self.period_s = period_s or math.inf
        self.period = math.floor(now_s / period_s) if period_s else 0
        self.period_end_s = (self.period + 1) * period_s if period_s else math.inf
        # Tokens used in the current period, and since the start (limits.parquet takes
        # differences).
        self.prompt_used = self.uncached_used = self.generated_used = 0.0
        self.prompt_total = self.uncached_total = self.generated_total = 0.0
        # Per limit: (period, use) pairs with decreasing use: the front is the trailing peak.
        self.peaks: list[deque[tuple[int, float]]] = [deque(), deque(), deque()]
        self.attempts = 0
        self.rate_limited = 0

    def levels_at(self, now_s: float) -> list[float]:
        """The three bucket levels at `now_s` (no later than the next period end), tokens."""
        levels = [self.prompt_level, self.uncached_level, self.generated_level]
        dt_min = (now_s - self.base_s) / 60.0
        if not self.bounded or dt_min <= 0:
            return levels
        return [
            min(limit, level + limit * dt_min)
            for level, limit in zip(levels, self.limit_tpm, strict=True)
        ]

    def used_total(self) -> tuple[float, float, float]:
        """Tokens used since the start, per limit."""
        return (self.prompt_total, self.uncached_total, self.generated_total)

    def advance(self, now_s: float) -> None:
        """Apply the limit updates of every period that ended at or before `now_s`."""
        policy = self.policy
        while now_s >= self.period_end_s:
            end_s = self.period_end_s
            used = (self.prompt_used, self.uncached_used, self.generated_used)
            new = [
                policy.update(kind, self.limit_tpm[kind], used[kind], self._peak(kind, used[kind]))
                for kind in range(3)
            ]
            idle = not any(used) and not any(self.peaks)
            if new != self.limit_tpm:
                self._rebase(end_s)
                self.limit_tpm = new
                self.prompt_level = min(self.prompt_level, new[0])
                self.uncached_level = min(self.uncached_level, new[1])
                self.generated_level = min(self.generated_level, new[2])
            elif idle:
                # Nothing used, no peak left, nothing moved: every later period is the same.
                self.period = math.floor(now_s / self.period_s)
                self.period_end_s = (self.period + 1) * self.period_s
                return
            self.prompt_used = self.uncached_used = self.generated_used = 0.0
            self.period += 1
            self.period_end_s = (self.period + 1) * self.period_s

    def _peak(self, kind: int, used: float) -> float:
        """Record this period's use and return the largest within the trailing window."""
        window = self.policy.peak_window_updates
        if not window:
            return 0.0
        peaks = self.peaks[kind]
        if used > 0:
            while peaks and peaks[-1][1] <= used:
                peaks.pop()
            peaks.append((self.period, used))
        while peaks and peaks[0][0] <= self.period - window:
            peaks.popleft()
        return peaks[0][1] if peaks else 0.0

    def _rebase(self, now_s: float) -> None:
        self.prompt_level, self.uncached_level, self.generated_level = self.levels_at(now_s)
        self.base_s = now_s

    def try_admit(self, now_s: float, prompt: int, reserve: int) -> bool:
        """Charge the prompt (and an output reservation) unless a bucket is empty."""
        if now_s >= self.period_end_s:
            self.advance(now_s)
        self.attempts += 1
        if self.bounded:
            # levels_at, unrolled: this runs for every attempt.
            limit = self.limit_tpm
            m0, m1, m2 = limit[0], limit[1], limit[2]
            dt_min = (now_s - self.base_s) / 60.0
            l0 = self.prompt_level + m0 * dt_min
            l1 = self.uncached_level + m1 * dt_min
            l2 = self.generated_level + m2 * dt_min
            l0 = l0 if l0 < m0 else m0
            l1 = l1 if l1 < m1 else m1
            l2 = l2 if l2 < m2 else m2
            if l0 <= 0 or l1 <= 0 or l2 <= 0:
                self.rate_limited += 1
                return False
            self.prompt_level = l0 - prompt
            self.uncached_level = l1
            self.generated_level = l2 - reserve
            self.base_s = now_s
        self.prompt_used += prompt
        self.prompt_total += prompt
        return True

    def settle(self, now_s: float, uncached: int, generated: int, reserved: int) -> None:
        """A served attempt: charge its uncached prompt and generated tokens (less what was
        reserved for the output at admission)."""
        if now_s >= self.period_end_s:
            self.advance(now_s)
        if self.bounded:
            # _charge(now_s, 0, uncached, generated - reserved), unrolled (min(a, b) as
            # `b if b < a else a`, the same value): this runs for every served attempt.
            limit = self.limit_tpm
            m0, m1, m2 = limit[0], limit[1], limit[2]
            dt_min = (now_s - self.base_s) / 60.0
            if dt_min < 0:
                dt_min = 0.0
            l0 = self.prompt_level + m0 * dt_min
            l1 = self.uncached_level + m1 * dt_min
            l2 = self.generated_level + m2 * dt_min
            l0 = m0 if m0 < l0 else l0
            l1 = (m1 if m1 < l1 else l1) - uncached
            l2 = (m2 if m2 < l2 else l2) - (generated - reserved)
            self.prompt_level = l0
            self.uncached_level = m1 if m1 < l1 else l1
            self.generated_level = m2 if m2 < l2 else l2
            self.base_s = now_s
        self.uncached_used += uncached
        self.generated_used += generated
        self.uncached_total += uncached
        self.generated_total += generated

    def refund(self, now_s: float, prompt: int, reserved: int) -> None:
        """An admitted attempt that was not served: give back what admission charged."""
        if now_s >= self.period_end_s:
            self.advance(now_s)
        self._charge(now_s, -prompt, 0, -reserved)
        self.prompt_used = max(0.0, self.prompt_used - prompt)
        self.prompt_total -= prompt

    def _charge(self, now_s: float, prompt: float, uncached: float, generated: float) -> None:
        if not self.bounded:
            return
        limit = self.limit_tpm
        dt_min = (now_s - self.base_s) / 60.0
        if dt_min < 0:
            dt_min = 0.0
        l0 = min(self.prompt_level + limit[0] * dt_min, limit[0]) - prompt
        l1 = min(self.uncached_level + limit[1] * dt_min, limit[1]) - uncached
        l2 = min(self.generated_level + limit[2] * dt_min, limit[2]) - generated
        self.prompt_level = min(l0, limit[0])
        self.uncached_level = min(l1, limit[1])
        self.generated_level = min(l2, limit[2])
        self.base_s = now_s


class RequestCap:
    """An account's requests per minute: a bucket of one minute's requests, refilled
    continuously; an attempt needs a whole request in it."""

    __slots__ = ("base_s", "level", "per_min")

    def __init__(self, per_min: float, now_s: float) -> None:
        self.per_min = per_min
        self.level = per_min
        self.base_s = now_s

    def take(self, now_s: float) -> bool:
        per_min = self.per_min
        level = self.level + per_min * (now_s - self.base_s) / 60.0
        if per_min < level:
            level = per_min
        if level < 1.0:
            return False
        self.level = level - 1.0
        self.base_s = now_s
        return True

    def give_back(self, now_s: float) -> None:
        level = self.level + self.per_min * (now_s - self.base_s) / 60.0
        self.level = min(self.per_min, level + 1.0)
        self.base_s = now_s
