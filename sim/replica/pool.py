"""A pool: replicas of one model behind one router, each with a lifecycle.

A replica slot is starting (cold start or restart: held, routed nothing), serving, draining
(finishing what it holds, routed nothing new) or down (not held). The router sees the serving
replicas only. Failures, rolling updates and the autoscaler move replicas between these states:
all are events the pool schedules and applies itself (docs/fleet.md). A replica that fails or
restarts is replaced by a fresh one with an empty cache.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable

from sim.clock import Clock, call_later
from sim.perf.base import BatchTimeModel
from sim.perf.config import ExponentialPerf, FixedPerf
from sim.replica.autoscaling import AUTOSCALERS
from sim.replica.autoscaling.base import FleetSignals
from sim.replica.batch import BATCH, BatchQueue
from sim.replica.config import Pool
from sim.replica.kvcache import KVCache
from sim.replica.protocol import ServingReplica
from sim.replica.replica import Replica
from sim.replica.schedulers import build_scheduler
from sim.replica.slots import SlotReplica
from sim.request import Request
from sim.rng import stream
from sim.routing import POLICIES, RoutingConfig
from sim.routing.base import PoolLoad, PoolView
from sim.status import STATUS_EXPIRED, STATUS_OK, STATUS_SHED

STARTING, SERVING, DRAINING, DOWN = "starting", "serving", "draining", "down"
RESTART, RELEASE = "restart", "release"  # what a draining replica does once empty


class ReplicaPool:
    def __init__(
        self,
        env: Clock,
        model_id: str,
        pool_name: str,
        pool: Pool,
        routing: RoutingConfig,
        seed: int,
        step_by_step: bool,
        on_done: Callable[[Request], None],
        perf: BatchTimeModel | None,
        kv_capacity_blocks: int,
    ) -> None:
        self.env = env
        self.model_id = model_id
        self.name = pool_name
        self.config = pool
        self.kv_capacity_blocks = kv_capacity_blocks
        self._seed = seed
        self._perf = perf
        self._step_by_step = step_by_step
        self._on_done = on_done
        scaling = pool.autoscaling
        self.slots = max(pool.replicas, scaling.max_replicas) if scaling else pool.replicas
        self.load = PoolLoad(self.slots)
        self.batch = BatchQueue()  # Batch rows waiting for spare capacity on any serving replica
        self.replicas: list[ServingReplica] = [self._new_replica(i) for i in range(self.slots)]
        for replica in self.replicas[pool.replicas :]:
            replica.takes_batch = False  # down
        # Per slot: state, a version that makes timers of an earlier state stale, what a drain
        # ends in, and the counters of the replicas it held before (busy s, prompt, cached).
        self.state = [SERVING if i < pool.replicas else DOWN for i in range(self.slots)]
        self._version = [0] * self.slots
        self._after_drain = [RELEASE] * self.slots
        self._carry = [(0.0, 0, 0) for _ in range(self.slots)]
        self._held_s = [0.0] * self.slots  # held seconds until `_since_s`, while held
        self._serving_s = [0.0] * self.slots
        self._since_s = [0.0] * self.slots

        self.view = PoolView(self.load, self.replicas, kv_capacity_blocks)
        del self.view.serving[pool.replicas :]
        self.view.is_serving[pool.replicas :] = [False] * (self.slots - pool.replicas)
        policy = POLICIES[routing.policy]
        self.router = policy(routing, self.view, stream(seed, "routing", model_id, pool_name))

        self._failure_rngs = [
            stream(seed, "failures", model_id, pool_name, str(i)) for i in range(self.slots)
        ]
        self._update_queue: deque[int] = deque()
        self._updating: set[int] = set()
        self.scaler = AUTOSCALERS[scaling.policy](scaling) if scaling else None
        # (decision time, replicas wanted): the initial count stands as wanted at the start.
        self._wanted: deque[tuple[float, int]] = deque([(0.0, pool.replicas)])
        self._last_busy_s = [0.0] * self.slots
        self._last_serving_s = [0.0] * self.slots
        self._queue_s_sum = 0.0
        self._queue_count = 0
        # Tests set a list here to get every state change: (t_s, replica, new state).
        self.log: list[tuple[float, int, str]] | None = None

    def _new_replica(self, index: int) -> ServingReplica:
        """A fresh replica for a slot (empty cache, empty queues). A slot model's service times
        are keyed by the request, not the replica: a restarted or added replica changes none of
        them."""
        pool = self.config
        scheduler = build_scheduler(pool.scheduler)
        if isinstance(pool.perf, FixedPerf | ExponentialPerf):
            return SlotReplica(
                self.env,
                index,
                pool.perf,
                pool.max_num_seqs,
                self._seed,
                self._finished,
                scheduler,
                self.batch,
                pool.batch_max_share,
            )
        assert self._perf is not None
        return Replica(
            self.env,
            index,
            self._perf,
            KVCache(self.kv_capacity_blocks, pool.prefix_caching),
            pool.block_size,
            pool.max_num_seqs,
            pool.max_batched_tokens,
            self._step_by_step,
            self._finished,
            scheduler,
            self.batch,
            pool.batch_max_share,
            pool.batch_max_slowdown,
            pool.batch_max_iteration_s,
        )

    # ------------------------------------------------------------------------------ requests
    def submit(self, request: Request) -> None:
        if request.tier == BATCH:  # it waits for spare capacity, even with nothing serving
            self.batch.add(request)
            self._offer_batch()
            return
        if not self.view.serving:  # every replica is starting, draining or down
            request.status = STATUS_SHED
            request.finished_s = self.env.now
            self._on_done(request)
            return
        index = self.router.choose(request)
        self.load.add(index, request)
        self.replicas[index].enqueue(request)

    def _offer_batch(self) -> None:
        """Serving replicas, in index order, take what Batch rows their spare capacity allows."""
        for index in self.view.serving:
            if not self.batch:
                return
            self.replicas[index].offer_batch()

    def expire_batch(self, job: str) -> None:
        """A batch job expired: its waiting rows end expired now, its running rows when their
        replica's iteration in flight ends."""
        now = self.env.now
        for request in self.batch.expire(job):
            request.status = STATUS_EXPIRED
            request.finished_s = now
            self._on_done(request)
        for replica in self.replicas:
            replica.expire_batch()

    def _finished(self, request: Request) -> None:
        index = request.replica
        if request.tier == BATCH:  # never in the router's load nor the autoscaler's delay
            self._on_done(request)
            if self.state[index] == DRAINING:
                call_later(self.env, 0.0, self._drain_check, (index, self._version[index]))
            return
        self.load.remove(index, request)
        if self.scaler is not None and request.status == STATUS_OK:
            self._queue_s_sum += request.admitted_s - request.arrival_s
            self._queue_count += 1
        self._on_done(request)
        if self.state[index] == DRAINING:
            call_later(self.env, 0.0, self._drain_check, (index, self._version[index]))

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Schedule the fleet events of the scenario: failures, the update, scaling decisions."""
        failures = self.config.failures
        if failures is not None:
            for failure in failures.scheduled:
                call_later(self.env, failure.at_s, self._fail, failure.replica)
            for index in self.view.serving:
                self._arm_failure(index)
        update = self.config.rolling_update
        if update is not None:
            call_later(self.env, update.at_s, self._begin_update)
        if self.scaler is not None:
            call_later(self.env, self.scaler.config.decision_interval_s, self._decide)

    def _set_state(self, index: int, state: str) -> None:
        now = self.env.now
        old = self.state[index]
        if old != DOWN:
            self._held_s[index] += now - self._since_s[index]
        if old == SERVING:
            self._serving_s[index] += now - self._since_s[index]
        self._since_s[index] = now
        self.state[index] = state
        if self.log is not None:
            self.log.append((now, index, state))
        self._version[index] += 1  # timers set in the old state are stale
        view = self.view
        if old == SERVING:
            view.serving.remove(index)
            view.is_serving[index] = False
            self.router.serving_changed(index, False)
        self.replicas[index].takes_batch = state == SERVING
        if state == SERVING:
            bisect.insort(view.serving, index)
            view.is_serving[index] = True
            self.router.serving_changed(index, True)
            self._arm_failure(index)
            if self.batch:
                call_later(self.env, 0.0, self._offer_batch_event)
        if index in self._updating and state in (SERVING, DOWN):
            self._updating.discard(index)
            self._update_next()

    def _begin_start(self, index: int, delay_s: float) -> None:
        self._set_state(index, STARTING)
        call_later(self.env, delay_s, self._started, (index, self._version[index]))

    def _started(self, key: tuple[int, int]) -> None:
        index, version = key
        if version == self._version[index]:
            self._set_state(index, SERVING)

    def _replace(self, index: int) -> list[Request]:
        """Stop the slot's replica (its cache is lost) and put a fresh one in its place; the
        requests it held are returned."""
        old = self.replicas[index]
        now = self.env.now
        busy_s, prompt, cached = self._carry[index]
        self._carry[index] = (
            busy_s + old.busy_s_at(now),
            prompt + old.prompt_tokens_admitted,
            cached + old.cached_tokens_admitted,
        )
        lost = old.stop()
        self.replicas[index] = self._new_replica(index)
        return lost

    def _drain(self, index: int, then: str) -> None:
        self._set_state(index, DRAINING)
        self._after_drain[index] = then
        call_later(self.env, 0.0, self._drain_check, (index, self._version[index]))

    def _drain_check(self, key: tuple[int, int]) -> None:
        index, version = key
        replica = self.replicas[index]
        if version != self._version[index] or replica.running or replica.waiting:
            return
        self._replace(index)
        if self._after_drain[index] == RESTART:
            update = self.config.rolling_update
            assert update is not None
            self._begin_start(index, update.restart_s)
        else:
            self._set_state(index, DOWN)

    def _offer_batch_event(self, _: None) -> None:
        self._offer_batch()

    # ------------------------------------------------------------------------------ failures
    def _arm_failure(self, index: int) -> None:
        failures = self.config.failures
        if failures is None or failures.mtbf_s is None:
            return
        delay_s = float(self._failure_rngs[index].exponential(failures.mtbf_s))
        call_later(self.env, delay_s, self._failure_due, (index, self._version[index]))

    def _failure_due(self, key: tuple[int, int]) -> None:
        index, version = key
        if version == self._version[index]:
            self._fail(index)

    def _fail(self, index: int) -> None:
        """A serving replica fails: every attempt it holds is answered 503, its cache is lost,
        and it restarts."""
        if self.state[index] != SERVING:
            return
        failures = self.config.failures
        assert failures is not None
        now = self.env.now
        lost = self._replace(index)
        self._begin_start(index, failures.restart_s)
        batch = [request for request in lost if request.tier == BATCH]
        for request in reversed(batch):  # Batch waits: its rows go back first in the queue
            self.batch.requeue(request)
        if batch:
            self._offer_batch()
        for request in lost:
            if request.tier == BATCH:
                continue
            self.load.remove(index, request)
            request.status = STATUS_SHED
            request.finished_s = now
            self._on_done(request)

    # ------------------------------------------------------------------------------ rolling update
    def _begin_update(self, _: None) -> None:
        self._update_queue = deque(i for i in range(self.slots) if self.state[i] == SERVING)
        self._update_next()

    def _update_next(self) -> None:
        update = self.config.rolling_update
        assert update is not None
        queue = self._update_queue
        while queue and len(self._updating) < update.max_unavailable:
            index = queue.popleft()
            if self.state[index] == SERVING:
                self._updating.add(index)
                self._drain(index, RESTART)

    # ------------------------------------------------------------------------------ autoscaling
    def _signals(self, now: float) -> FleetSignals:
        busy_s = served_s = 0.0
        kv_use = 0.0
        capacity = max(self.kv_capacity_blocks, 1)
        for index in range(self.slots):
            busy_now = self.counters(index, now)[0]
            serving_now = self._serving_s[index]
            if self.state[index] == SERVING:
                serving_now += now - self._since_s[index]
                busy_s += busy_now - self._last_busy_s[index]
                served_s += serving_now - self._last_serving_s[index]
                kv_use += self.replicas[index].kv_used_blocks / capacity
            self._last_busy_s[index] = busy_now
            self._last_serving_s[index] = serving_now
        serving = len(self.view.serving)
        queue_s = self._queue_s_sum / self._queue_count if self._queue_count else 0.0
        self._queue_s_sum, self._queue_count = 0.0, 0
        return FleetSignals(
            serving=serving,
            utilisation=min(busy_s / served_s, 1.0) if served_s > 0 else 0.0,
            queue_s=queue_s,
            kv_use=kv_use / serving if serving else 0.0,
        )

    def _decide(self, _: None) -> None:
        """One scaling decision: start replicas toward the wanted count at once; stop them only
        down to the most wanted over the scale-down delay."""
        assert self.scaler is not None
        config = self.scaler.config
        now = self.env.now
        signals = self._signals(now)
        active = [i for i in range(self.slots) if self.state[i] in (STARTING, SERVING)]
        wanted = self.scaler.wanted(signals) if signals.serving else len(active)
        wanted = min(max(wanted, config.min_replicas), config.max_replicas)
        history = self._wanted
        history.append((now, wanted))
        while history[0][0] < now - config.scale_down_delay_s:
            history.popleft()
        if wanted > len(active):
            free = [i for i in range(self.slots) if self.state[i] == DOWN]
            for index in free[: wanted - len(active)]:
                self._begin_start(index, config.cold_start_s)
        else:
            keep = max(w for _, w in history)
            # The newest first: replicas still starting, then the highest serving index.
            order = sorted(active, key=lambda i: (self.state[i] == SERVING, -i))
            for index in order[: max(len(active) - keep, 0)]:
                if self.state[index] == STARTING:
                    self._set_state(index, DOWN)
                else:
                    self._drain(index, RELEASE)
        call_later(self.env, config.decision_interval_s, self._decide)

    # ------------------------------------------------------------------------------ sampling
    def counters(self, index: int, now: float) -> tuple[float, int, int]:
        """(busy seconds, prompt tokens admitted, cached tokens admitted) of a slot since the
        start, over every replica it has held."""
        replica = self.replicas[index]
        busy_s, prompt, cached = self._carry[index]
        return (
            busy_s + replica.busy_s_at(now),
            prompt + replica.prompt_tokens_admitted,
            cached + replica.cached_tokens_admitted,
        )

    def held_s(self, index: int, now: float) -> float:
        """Seconds the slot has held a replica (starting, serving or draining) since the start."""
        held_s = self._held_s[index]
        return held_s + (now - self._since_s[index]) if self.state[index] != DOWN else held_s

    def held_count(self) -> int:
        return sum(state != DOWN for state in self.state)
