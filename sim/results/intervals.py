"""What the time series and limits.parquet share: a sample at every multiple of the sampling
period up to the end of arrivals, each taken before anything else due then, so that the
sample at t closes the interval ending at t."""

from __future__ import annotations

from sim.clock import Clock, call_first_at


class IntervalSampler:
    def __init__(self, env: Clock, period_s: float, end_s: float) -> None:
        self.env = env
        self.period_s = period_s
        self.end_s = end_s
        self._tick = 0

    def start(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        self._tick += 1
        at = self._tick * self.period_s
        if at <= self.end_s + 1e-9:
            call_first_at(self.env, at, self._on_tick)

    def _on_tick(self, _: None) -> None:
        self._sample(self.env.now)
        self._schedule()

    def _sample(self, now: float) -> None:
        """Record the interval ending at `now`."""
        raise NotImplementedError
