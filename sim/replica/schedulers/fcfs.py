"""First come, first served: one queue in arrival order whatever the tier, and the most recently
admitted request is preempted when memory runs out. The baseline that shows what tiers buy."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from sim.config_base import StrictModel
from sim.replica.schedulers.base import Scheduler
from sim.replica.schedulers.config import FcfsConfig
from sim.request import Request


class Fcfs(Scheduler):
    name = "fcfs"
    Config = FcfsConfig

    def __init__(self, config: StrictModel) -> None:
        super().__init__(config)
        self.queue: deque[Request] = deque()

    def add(self, request: Request) -> None:
        self.queue.append(request)
        self.waiting += 1

    def requeue(self, request: Request) -> None:
        self.queue.appendleft(request)
        self.waiting += 1

    def head(self) -> Request | None:
        return self.queue[0] if self.queue else None

    def pop_head(self, request: Request) -> None:
        self.queue.popleft()
        self.waiting -= 1

    def waiting_requests(self) -> Iterator[Request]:
        return iter(self.queue)

    def victim(self, running: dict[Request, None]) -> Request:
        return next(reversed(running))
