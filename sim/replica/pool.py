"""A pool: identical replicas of one model behind one router."""

from __future__ import annotations

from collections.abc import Callable

from sim.clock import Clock
from sim.perf.base import BatchTimeModel
from sim.replica.config import Pool
from sim.replica.kvcache import KVCache
from sim.replica.replica import Replica
from sim.replica.slots import SlotReplica
from sim.request import Request
from sim.rng import stream
from sim.routing import POLICIES, RoutingConfig
from sim.routing.base import PoolLoad, PoolView


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
        self.model_id = model_id
        self.name = pool_name
        self.config = pool
        self.kv_capacity_blocks = kv_capacity_blocks
        self.load = PoolLoad(pool.replicas)
        self._on_done = on_done
        self.replicas: list[Replica | SlotReplica] = []
        for index in range(pool.replicas):
            if pool.slot_model:
                rng = stream(seed, "service", model_id, pool_name, str(index))
                self.replicas.append(
                    SlotReplica(env, index, pool.perf, pool.max_num_seqs, rng, self._finished)  # type: ignore[arg-type]
                )
            else:
                assert perf is not None
                self.replicas.append(
                    Replica(
                        env,
                        index,
                        perf,
                        KVCache(kv_capacity_blocks, pool.prefix_caching),
                        pool.block_size,
                        pool.max_num_seqs,
                        pool.max_batched_tokens,
                        step_by_step,
                        self._finished,
                    )
                )

        policy = POLICIES[routing.policy]
        view = PoolView(self.load, self.replicas, kv_capacity_blocks)
        self.router = policy(routing, view, stream(seed, "routing", model_id, pool_name))

    def submit(self, request: Request) -> None:
        index = self.router.choose(request)
        self.load.add(index, request)
        self.replicas[index].enqueue(request)

    def _finished(self, request: Request) -> None:
        self.load.remove(request.replica, request)
        self._on_done(request)
