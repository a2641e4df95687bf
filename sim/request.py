"""One request attempt as it moves through the gateway, a router and a replica."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from sim.status import STATUS_IN_FLIGHT
from sim.workload.chains import Runs

Tier = Literal["standard", "priority", "batch"]  # what a client may ask for ("fast" is implied)
ALL_TIERS: list[Tier] = ["standard", "priority", "batch"]

if TYPE_CHECKING:
    from sim.gateway.buckets import TokenBuckets

# Admission order within a replica (Fast pools serve only "fast").
TIER_RANK = {"priority": 0, "fast": 1, "standard": 1, "batch": 2}


class Request:
    """Static fields come from the workload; the rest is filled in as the request is served.

    A decoding request's progress is lazy: while it decodes, its generated-token count is
    `generated + (replica.step - joined_step)`, so a run of decode steps touches no request.
    """

    __slots__ = (
        "account",
        "admit_seq",
        "admitted_s",
        "affinity_key",
        "arrival_s",
        "attempt",
        "block_runs",
        "cached_tokens",
        "client",
        "cost_usd",
        "epoch",
        "final",
        "finished_s",
        "first_token_s",
        "generated",
        "joined_step",
        "kv_blocks",
        "limit_buckets",
        "limit_generated_tps",
        "limit_prompt_tps",
        "limit_uncached_prompt_tps",
        "logical_id",
        "model",
        "output_tokens",
        "pool",
        "preemptions",
        "prefill_done",
        "prefill_target",
        "prompt_tokens",
        "replica",
        "request_id",
        "session_id",
        "shared_blocks",
        "source_seq",
        "status",
        "tier",
        "traffic",
        "turn",
    )

    def __init__(
        self,
        request_id: int,
        traffic: str,
        account: str,
        model: str,
        tier: str,
        arrival_s: float,
        prompt_tokens: int,
        output_tokens: int,
        block_runs: Runs | None = None,
        attempt: int = 1,
        logical_id: int = -1,
    ) -> None:
        self.request_id = request_id
        self.traffic = traffic
        self.account = account
        self.model = model
        self.tier = tier
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.block_runs = block_runs  # the prompt's block chain (None: nothing to share)
        self.attempt = attempt  # 1 for the first attempt of a logical request, 2 for a retry...
        # The logical request it belongs to: its first attempt's request_id.
        self.logical_id = request_id if logical_id < 0 else logical_id
        self.affinity_key: str | None = None  # x-session-affinity header or `user` field
        self.final = False  # set by the client: this attempt ended its logical request
        self.session_id = -1  # -1: not part of a session
        self.turn = 0  # 1, 2, ... within a session
        # Its number within its source (open loop, trace: the arrival index; a session's turn:
        # the session's number): with traffic, turn and attempt, the identity that keys its
        # service-time draw, the same whatever the routing or fleet.
        self.source_seq = -1
        # Told of the attempt's outcome, as a scheduled event (never from inside a replica).
        self.client: Callable[[Request], None] | None = None
        self.pool = ""
        self.replica = -1
        self.status = STATUS_IN_FLIGHT
        self.admitted_s = math.nan
        self.first_token_s = math.nan
        self.finished_s = math.nan
        self.cached_tokens = 0
        self.preemptions = 0
        self.generated = 0  # tokens generated when the request last joined the decode set
        self.prefill_target = 0  # tokens in KV once the current (re)admission's prefill is done
        self.prefill_done = 0  # of prefill_target, computed or taken from the cache so far
        self.kv_blocks = 0  # blocks held while prefilling (decoders' blocks are derived)
        self.shared_blocks = 0  # leading blocks it references in the prefix cache
        self.joined_step = 0
        self.admit_seq = 0
        self.epoch = 0  # bumped on preemption: heap entries of an earlier epoch are stale
        self.cost_usd = 0.0  # billed when served
        # The limits in force at the rate-limit check (the response headers), tokens/s: NaN
        # when the attempt was refused before it.
        self.limit_prompt_tps = math.nan
        self.limit_uncached_prompt_tps = math.nan
        self.limit_generated_tps = math.nan
        self.limit_buckets: TokenBuckets | None = None  # charged at admission, until settled
