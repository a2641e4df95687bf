"""One model replica: a continuous-batching loop (chunked prefill, KV blocks, preemption by
recompute), with decode-only stretches advanced in one event.

The loop, per iteration (DESIGN.md, "The replica engine, step by step"): plan (decodes take one
token each of the budget, prefilling requests their next chunk, then waiting requests are
admitted in the scheduler's order while slots, budget and blocks allow), price (the performance
model), apply (tokens, first tokens, finishes, block growth). The scheduler policy
(`schedulers/`) owns the waiting requests and decides which one goes next and which running
request gives way when memory runs out. When the plan has no prefill work and nothing waiting
can be admitted, the identical decode steps up to the next finish (or until the free blocks run
out) are one event, cut short by an arrival.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from heapq import heappop, heappush

from sim.clock import Clock, Timer
from sim.perf.base import BatchTimeModel
from sim.replica.batch import BATCH, BatchQueue, reserved_blocks
from sim.replica.kvcache import KVCache
from sim.replica.schedulers.base import Scheduler
from sim.replica.stretch import steps_done_by, stretch_time_s
from sim.request import Request
from sim.status import STATUS_EXPIRED, STATUS_OK


class Replica:
    def __init__(
        self,
        env: Clock,
        index: int,
        perf: BatchTimeModel,
        kv: KVCache,
        block_size: int,
        max_num_seqs: int,
        max_batched_tokens: int,
        step_by_step: bool,
        on_done: Callable[[Request], None],
        scheduler: Scheduler,
        batch: BatchQueue | None = None,
        batch_max_share: float = 1.0,
        batch_max_slowdown: float = math.inf,
        batch_max_iteration_s: float = math.inf,
    ) -> None:
        """`batch`: the pool's queue of Batch rows (a replica built alone has an empty one of
        its own)."""
        self.env = env
        self.index = index
        self.perf = perf
        self.kv = kv
        self.block_size = block_size
        self.max_num_seqs = max_num_seqs
        self.max_batched_tokens = max_batched_tokens
        self.step_by_step = step_by_step
        self.on_done = on_done
        self.scheduler = scheduler
        self.running: dict[Request, None] = {}  # in admission order (preemption picks from it)
        # Batch: the pool's queue, drawn from while the pool says this replica serves; the
        # rows running here (admission order) and the blocks they count against the share.
        self.batch = batch if batch is not None else BatchQueue()
        self.takes_batch = True  # the pool's to set: draws from its queue while serving
        self.batch_running: dict[Request, None] = {}
        self.batch_blocks = 0
        self.batch_max_seqs = batch_max_share * max_num_seqs
        self.batch_max_blocks = batch_max_share * kv.capacity_blocks
        self.batch_max_slowdown = batch_max_slowdown
        self.batch_max_iteration_s = batch_max_iteration_s
        # Batch rows decoding, and their summed context as of `batch_context_step` (lazily, as
        # the totals): what an iteration would cost without them.
        self.batch_decoding = 0
        self.batch_context_sum = 0
        self.batch_context_step = 0
        self._drop_expired = False  # a job expired: drop its running rows at the next plan
        # The planned iteration's Batch work was cut or held by a price bound: the next step's
        # bound differs (contexts grow), so no step is skipped (the step-by-step records).
        self._batch_bounded = False
        self.prefilling: list[Request] = []
        # Decoding requests, lazily: a heap of finish steps, their count, their summed context
        # as of `context_step`, and how many cross a block boundary at each step modulo block_size.
        self.finish_heap: list[tuple[int, int, int, Request]] = []
        self.decoding = 0
        self.context_sum = 0
        self.context_step = 0
        self.boundary_phase = [0] * block_size
        self.step = 0
        self.admissions = 0
        # The iteration in flight.
        self.busy = False
        self.version = 0
        self._timer = Timer(env)  # the iteration's end: a cut run moves it
        self.iteration_start_s = 0.0
        self.chunks: list[tuple[Request, int]] = []
        self.stretch_steps = 0  # > 0: a decode-only run of that many steps is in flight
        self.stretch_context0 = 0
        self.run_ends_s: list[float] = []  # a prefill run's iteration ends, from its start
        self.busy_s = 0.0
        self.iterations = 0
        self._iteration_end = self._on_iteration_end  # one bound method, not one per event
        self.prompt_tokens_admitted = 0  # first admissions only: the cache hit ratio's terms
        self.cached_tokens_admitted = 0
        # Tests set a list here to get the exact event log: ("iteration", start_s,
        # duration_s, decodes, [(request_id, chunk_tokens)], steps) and
        # ("first_token" | "finish", t_s, request_id).
        self.log: list[tuple] | None = None

    # ----------------------------------------------------------------------------- arrivals
    def enqueue(self, request: Request) -> None:
        if request.tier == BATCH:  # a replica built alone: its own queue stands for the pool's
            self.batch.add(request)
            self.offer_batch()
            return
        request.replica = self.index
        self.scheduler.add(request)
        if not self.busy:
            self._plan(self.env.now)
        elif self.stretch_steps > 1 and (self.chunks or self._admissible_head(request)):
            # A prefill run is cut for any arrival: the blocks it has computed so far are not
            # published yet, so a newcomer's cache hit (and its admissibility) is not known.
            self._cut_stretch()

    @property
    def waiting(self) -> int:
        return self.scheduler.waiting

    def waiting_requests(self) -> Iterator[Request]:
        return self.scheduler.waiting_requests()

    @property
    def kv_used_blocks(self) -> int:
        return self.kv.used_blocks

    @property
    def kv_cached_blocks(self) -> int:
        return self.kv.cached_blocks

    def _admissible_head(self, request: Request) -> bool:
        """Could the next plan admit `request` (or preempt to admit it)? If not, a decode run
        need not be cut for it: slots and budget stay as they are during a run, free blocks
        only shrink, and the scheduler's order changes only when a request is added or
        admitted (so only a newcomer at the head can change the next plan)."""
        if self.scheduler.head() is not request or self.decoding >= self.max_batched_tokens:
            return False
        if (
            len(self.running) < self.max_num_seqs
            and self._blocks_to_admit(request)[0] <= self.kv.available()
        ):
            return True
        if self.batch_running:
            return True  # a Batch row gives way
        return self.scheduler.admission_victim(request, self.running) is not None

    def _batch_open(self) -> bool:
        """May a Batch row be admitted: one waits, no interactive request does, and Batch holds
        less than its share of sequences and KV blocks."""
        return (
            len(self.batch.rows) > 0  # first: false at once in every run without Batch jobs
            and self.takes_batch
            and not self.scheduler.waiting
            and len(self.batch_running) < self.batch_max_seqs
            and self.batch_blocks < self.batch_max_blocks
        )

    def offer_batch(self) -> None:
        """Batch rows wait in the pool's queue (they came, or this replica started serving):
        plan now if idle, or end a run early if a row could join."""
        if not self._batch_open():
            return
        if not self.busy:
            self._plan(self.env.now)
        elif (
            self.stretch_steps > 1
            and len(self.running) < self.max_num_seqs
            and self.decoding < self.max_batched_tokens
        ):
            self._cut_stretch()

    def expire_batch(self) -> None:
        """A job expired (its name is in the queue's `expired`): its rows running here are
        dropped at the end of the iteration in flight."""
        if self.batch_running:
            self._drop_expired = True
            if self.stretch_steps > 1:
                self._cut_stretch()

    def _blocks_to_admit(self, request: Request) -> tuple[int, int, int]:
        """(blocks admission takes from the free pool, blocks it holds, cached blocks it reuses).

        Reused blocks are not prefilled again; one that was idle in the cache stops being free.
        A hit never covers the last token to prefill, so every admission computes something.
        """
        target = request.prompt_tokens + request.generated
        blocks = -(-(target + 1) // self.block_size)
        if request.block_runs is None:
            return blocks, blocks, 0
        hit, idle = self.kv.match(request.block_runs, (target - 1) // self.block_size)
        return blocks - hit + idle, blocks, hit

    def _cut_stretch(self) -> None:
        """End the run in flight at the boundary of the step now running."""
        elapsed_s = self.env.now - self.iteration_start_s
        if self.chunks:
            steps = bisect.bisect_right(self.run_ends_s, elapsed_s) + 1
            if steps < self.stretch_steps:
                self.stretch_steps = steps
                self._schedule(self.iteration_start_s + self.run_ends_s[steps - 1] - self.env.now)
            return
        lines = self.perf.decode_lines(self.decoding)
        steps = steps_done_by(
            lines, self.stretch_context0, self.decoding, self.stretch_steps, elapsed_s
        )
        if steps < self.stretch_steps:
            self.stretch_steps = steps
            end_s = self.iteration_start_s + stretch_time_s(
                lines, self.stretch_context0, self.decoding, steps
            )
            self._schedule(end_s - self.env.now)

    # ----------------------------------------------------------------------------- planning
    def _plan(self, now: float) -> None:
        """Plan the next iteration (or run of identical ones), price it and schedule its end."""
        if self._drop_expired:
            self._drop_expired_rows(now)
        self._batch_bounded = False
        need = self.boundary_phase[self.step % self.block_size] if self.decoding else 0
        if need > self.kv.available():
            need = self._preempt_for_growth(need)
        scheduler = self.scheduler
        if (
            scheduler.waiting
            and (scheduler.preempts_to_admit or self.batch_running)
            and self.decoding < self.max_batched_tokens
        ):
            need = self._preempt_to_admit(need)
        budget = self.max_batched_tokens - self.decoding
        chunks: list[tuple[Request, int]] = []
        shapes: list[tuple[int, int]] = []  # (chunk tokens, context before) for the perf model
        if self.prefilling:
            budget = self._continue_prefills(chunks, shapes, budget)
        if scheduler.waiting and budget > 0:
            budget = self._admit(chunks, shapes, budget, self.kv.available() - need, now)
        if self.batch_running or self._batch_open():
            self._batch_work(chunks, shapes, budget, self.kv.available() - need, now)
        if chunks:
            duration_s = self._price_prefill(chunks, shapes)
        elif self.decoding:
            duration_s = self._price_decode_stretch()
        else:
            self.busy = False
            return
        self.busy = True
        self.iteration_start_s = now
        version = self.version = self.version + 1
        self._timer.set(duration_s, self._iteration_end, version)

    def _preempt_for_growth(self, need: int) -> int:
        """Preempt the scheduler's victims until this step's new decode blocks fit; returns the
        blocks the remaining decodes still need."""
        while need > self.kv.available():
            need -= self._preempt(self._batch_victim() or self.scheduler.victim(self.running))
        return need

    def _batch_victim(self) -> Request | None:
        """The most recently admitted Batch row: whatever the policy, Batch gives way first,
        so that it is never the reason an interactive request waits for memory or a slot."""
        return next(reversed(self.batch_running)) if self.batch_running else None

    def _preempt_to_admit(self, need: int) -> int:
        """While the next waiting request lacks a slot or blocks, preempt a running Batch row,
        or (a policy that preempts to admit) the running request the policy names, if any."""
        scheduler = self.scheduler
        head = scheduler.head()
        while head is not None:
            if (
                len(self.running) < self.max_num_seqs
                and self._blocks_to_admit(head)[0] <= self.kv.available() - need
            ):
                break
            victim = self._batch_victim() or scheduler.admission_victim(head, self.running)
            if victim is None:
                break
            need -= self._preempt(victim)
        return need

    def _continue_prefills(
        self, chunks: list[tuple[Request, int]], shapes: list[tuple[int, int]], budget: int
    ) -> int:
        """Interactive requests already prefilling take their next chunk, in admission order,
        while the budget lasts; returns the budget left."""
        for request in self.prefilling:
            if budget <= 0:
                break
            if request.tier == BATCH:
                continue  # after the interactive part (`_batch_work`)
            chunk = request.prefill_target - request.prefill_done
            if chunk > budget:
                chunk = budget
            chunks.append((request, chunk))
            shapes.append((chunk, request.prefill_done))
            budget -= chunk
        return budget

    def _price_prefill(
        self, chunks: list[tuple[Request, int]], shapes: list[tuple[int, int]]
    ) -> float:
        """An iteration with prefill work, or a run of them for one lone prefilling request."""
        self.chunks = chunks
        decoding = self.decoding
        context = self.context_sum + decoding * (self.step - self.context_step)
        steps = self._prefill_run_steps() if len(chunks) == 1 else 1
        if steps > 1:
            return self._price_prefill_run(steps, context)
        self.stretch_steps = 0
        return self.perf.iteration_time_s(decoding, context, shapes)

    def _price_decode_stretch(self) -> float:
        """Decode-only steps up to the next finish (one with `step_by_step`), cut short where
        the decodes' new blocks stop fitting."""
        decoding = self.decoding
        steps = self._next_finish_step() - self.step
        if self.step_by_step or self._batch_bounded:
            steps = 1
        elif steps > 1:
            steps = self._steps_fitting(steps)
        self.stretch_steps = steps
        self.stretch_context0 = self.context_sum + decoding * (self.step - self.context_step)
        return stretch_time_s(
            self.perf.decode_lines(decoding), self.stretch_context0, decoding, steps
        )

    def _next_finish_step(self) -> int:
        heap = self.finish_heap
        while heap[0][2] != heap[0][3].epoch:
            heappop(heap)  # preempted since it was pushed
        return heap[0][0]

    def _prefill_run_steps(self) -> int:
        """How many iterations the planned one repeats with the same batch: one request's
        prompt in chunks of the whole budget beside the same decodes, until its prefill
        completes, a decode finishes or the decodes' new blocks no longer fit. Anything
        waiting might be admitted at a later step, and another prefilling request would take
        the last step's spare budget, so either keeps to single iterations."""
        if (
            self.step_by_step
            or self.scheduler.waiting
            or self._batch_open()
            or self._batch_bounded
            or len(self.prefilling) > 1
        ):
            return 1
        request, chunk = self.chunks[0]
        steps = -(-(request.prefill_target - request.prefill_done) // chunk)
        if steps > 1 and self.decoding:
            steps = min(steps, self._next_finish_step() - self.step)
            if steps > 1:
                steps = self._steps_fitting(steps)
        return steps

    def _price_prefill_run(self, steps: int, context: int) -> float:
        """Each iteration of a prefill run priced as it would be alone; their ends are kept
        so that an arrival can cut the run at the iteration in flight."""
        request, chunk = self.chunks[0]
        left, before = request.prefill_target - request.prefill_done, request.prefill_done
        decoding, price = self.decoding, self.perf.iteration_time_s
        total_s = 0.0
        ends_s = self.run_ends_s = []
        for _ in range(steps):
            tokens = chunk if chunk < left else left
            total_s += price(decoding, context, ((tokens, before),))
            ends_s.append(total_s)
            context += decoding
            before += tokens
            left -= tokens
        self.stretch_steps = steps
        return total_s

    def _admit(
        self,
        chunks: list[tuple[Request, int]],
        shapes: list[tuple[int, int]],
        budget: int,
        free_blocks: int,
        now: float,
    ) -> int:
        """Admit waiting requests in the scheduler's order while slots, budget and blocks allow;
        the first that does not fit stops admission (no overtaking). Returns the budget left."""
        running = self.running
        scheduler = self.scheduler
        while budget > 0 and len(running) < self.max_num_seqs:
            request = scheduler.head()
            if request is None:
                break
            taken, blocks, hit = self._blocks_to_admit(request)
            if taken > free_blocks:
                break
            scheduler.pop_head(request)
            free_blocks -= taken
            budget -= self._start_prefill(request, blocks, hit, chunks, shapes, budget, now)
        return budget

    def _batch_work(
        self,
        chunks: list[tuple[Request, int]],
        shapes: list[tuple[int, int]],
        budget: int,
        free_blocks: int,
        now: float,
    ) -> None:
        """Batch's part of the iteration, after the interactive part is planned. While
        interactive work is in the iteration, Batch prefill chunks (of rows prefilling, then of
        rows admitted from the pool's queue while it is open to this replica) are cut to keep
        the iteration within `batch_max_slowdown` of its time without Batch (as the performance
        model prices it), and a row is admitted only if its decode, once its prefill is done,
        would keep the interactive decodes' step within that bound too. Batch decodes already
        running are not preempted for speed (only for memory or a slot): recomputing them would
        cost more than it saves. With no interactive work, prefill chunks are cut to keep the
        iteration within `batch_max_iteration_s` (or its decodes' step), a block at least: an
        interactive arrival waits for the iteration in flight."""
        limit_s = decode_limit_s = math.inf
        least = 0
        interactive_decodes = self.decoding - self.batch_decoding
        price = self.perf.iteration_time_s
        if interactive_decodes or shapes:
            alone_context = self._context_now() - self._batch_context_now()
            limit_s = price(interactive_decodes, alone_context, shapes) * (
                1.0 + self.batch_max_slowdown
            )
            if interactive_decodes:  # what the interactive decodes' steps may become
                decode_limit_s = price(interactive_decodes, alone_context, []) * (
                    1.0 + self.batch_max_slowdown
                )
        else:  # Batch alone: an interactive arrival will wait for the iteration in flight
            base_s = price(self.decoding, self._context_now(), []) if self.decoding else 0.0
            limit_s = max(base_s, self.batch_max_iteration_s)
            least = self.block_size  # the least a prefill advances, whatever its context
        for request in self.prefilling:
            if budget <= 0:
                return
            if request.tier != BATCH:
                continue
            left = request.prefill_target - request.prefill_done
            want = min(left, budget)
            chunk = self._batch_chunk(want, request.prefill_done, shapes, limit_s)
            chunk = max(chunk, min(want, least))
            self._batch_bounded |= limit_s < math.inf
            if not chunk:
                return
            chunks.append((request, chunk))
            shapes.append((chunk, request.prefill_done))
            budget -= chunk
        queue = self.batch
        while budget > 0 and len(self.running) < self.max_num_seqs and self._batch_open():
            request = queue.head()
            taken, blocks, hit = self._blocks_to_admit(request)
            if taken > free_blocks:
                return
            target = request.prompt_tokens + request.generated
            self._batch_bounded |= limit_s < math.inf
            if decode_limit_s < math.inf and (
                price(self.decoding + 1, self._context_now() + target, []) > decode_limit_s
            ):
                return  # once decoding, it would slow the interactive decodes beyond the bound
            cached = hit * self.block_size
            left = target - cached
            want = min(left, budget)
            chunk = max(self._batch_chunk(want, cached, shapes, limit_s), min(want, least))
            if not chunk:
                return  # no room in this iteration: not admitted yet
            queue.pop()
            request.replica = self.index
            self.batch_running[request] = None
            self.batch_blocks += reserved_blocks(request, self.block_size)
            free_blocks -= taken
            budget -= self._start_prefill(request, blocks, hit, chunks, shapes, chunk, now)

    def _batch_chunk(
        self, want: int, before: int, shapes: list[tuple[int, int]], limit_s: float
    ) -> int:
        """The most of `want` prefill tokens (after `before` in KV) that a Batch row may add to
        the iteration planned in `shapes` and keep it within `limit_s` (0: none)."""
        if limit_s == math.inf:
            return want
        price = self.perf.iteration_time_s
        decoding, context = self.decoding, self._context_now()
        if price(decoding, context, [*shapes, (want, before)]) <= limit_s:
            return want
        low, high = 0, want  # price(low) fits, price(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            if price(decoding, context, [*shapes, (middle, before)]) <= limit_s:
                low = middle
            else:
                high = middle
        return low

    def _start_prefill(
        self,
        request: Request,
        blocks: int,
        hit: int,
        chunks: list[tuple[Request, int]],
        shapes: list[tuple[int, int]],
        most: int,
        now: float,
    ) -> int:
        """An admitted request takes its blocks and its first prefill chunk, of at most `most`
        tokens; returns the chunk."""
        block_size = self.block_size
        if hit:
            self.kv.acquire(request, hit)
        self.kv.allocate(blocks - hit)
        request.kv_blocks = blocks
        self.admissions += 1
        request.admit_seq = self.admissions
        self.running[request] = None
        self.prefilling.append(request)
        cached_tokens = hit * block_size
        if math.isnan(request.admitted_s):
            request.admitted_s = now
            request.cached_tokens = cached_tokens
            self.prompt_tokens_admitted += request.prompt_tokens
            self.cached_tokens_admitted += cached_tokens
        request.prefill_target = target = request.prompt_tokens + request.generated
        request.prefill_done = cached_tokens
        chunk = min(target - cached_tokens, most)
        chunks.append((request, chunk))
        shapes.append((chunk, cached_tokens))
        return chunk

    def _steps_fitting(self, steps: int) -> int:
        """The most decode steps, up to `steps`, whose new blocks fit in the free blocks."""
        n = self.decoding
        block_size = self.block_size
        free = self.kv.available()
        if n * -(-steps // block_size) <= free:
            return steps
        cycles = min(free // n, steps // block_size)
        done = cycles * block_size
        free -= cycles * n
        phase = self.boundary_phase
        while done < steps:
            need = phase[(self.step + done) % block_size]
            if need > free:
                break
            free -= need
            done += 1
        return max(done, 1)

    def _schedule(self, delay_s: float) -> None:
        self.version += 1
        self._timer.set(delay_s if delay_s > 0.0 else 0.0, self._iteration_end, self.version)

    # ----------------------------------------------------------------------------- applying
    def _on_iteration_end(self, version: int) -> None:
        if version != self.version:
            return  # the replica stopped since (`stop`)
        now = self.env.now
        self.busy_s += now - self.iteration_start_s
        self.iterations += 1
        steps = self.stretch_steps or 1
        chunks = self.chunks
        if steps > 1 and chunks:  # a prefill run: the chunks of every step done
            request, chunk = chunks[0]
            chunks = self.chunks = [
                (request, min(chunk * steps, request.prefill_target - request.prefill_done))
            ]
        if self.log is not None:
            logged = [(r.request_id, chunk) for r, chunk in chunks]
            start_s = self.iteration_start_s
            self.log.append(("iteration", start_s, now - start_s, self.decoding, logged, steps))
        self._advance_decodes(steps, now)
        if chunks:
            block_size = self.block_size
            for request, chunk in chunks:
                done = request.prefill_done = request.prefill_done + chunk
                if request.block_runs is not None:
                    self.kv.publish(request, done // block_size)
                if done == request.prefill_target:
                    self._prefill_complete(request, now)
            self.chunks = []
        self._plan(now)

    def _advance_decodes(self, steps: int, now: float) -> None:
        if self.decoding:
            if steps == 1:
                blocks = self.boundary_phase[self.step % self.block_size]
            else:
                blocks = self._blocks_needed(steps)
            if blocks:
                self.kv.allocate(blocks)
        step = self.step = self.step + steps
        heap = self.finish_heap
        while heap and heap[0][0] <= step:
            _, _, epoch, request = heappop(heap)
            if epoch == request.epoch:
                self._release(request, self._leave_decode(request))
                self._finish(request, now)

    def _blocks_needed(self, steps: int) -> int:
        """Blocks the decodes take in the next `steps` steps: every decode one per full cycle
        of block_size steps, then those whose boundary falls in the remaining steps."""
        block_size = self.block_size
        cycles, rest = divmod(steps, block_size)
        total = cycles * self.decoding
        if rest:
            phase = self.boundary_phase
            start = self.step % block_size
            end = start + rest
            total += sum(phase[start:end])
            if end > block_size:
                total += sum(phase[: end - block_size])
        return total

    def _prefill_complete(self, request: Request, now: float) -> None:
        self.prefilling.remove(request)
        request.generated += 1
        if math.isnan(request.first_token_s):
            request.first_token_s = now
            if self.log is not None:
                self.log.append(("first_token", now, request.request_id))
        if request.generated >= request.output_tokens:
            self._release(request, request.kv_blocks)
            self._finish(request, now)
        else:
            self._join_decode(request)
        request.kv_blocks = 0

    def _release(self, request: Request, held_blocks: int) -> None:
        """A finished request's blocks: its computed full blocks stay cached (for a session,
        the answer's too), the rest are freed."""
        if request.block_runs is not None:
            context = request.prompt_tokens + request.generated
            self.kv.publish(request, context // self.block_size)
        self.kv.release(request, held_blocks)

    def _finish(self, request: Request, now: float) -> None:
        del self.running[request]
        request.status = STATUS_OK
        if request.tier == BATCH:
            self._batch_leave(request)
            if request.traffic in self.batch.expired:
                request.status = STATUS_EXPIRED  # its last step ended after the job expired
        request.finished_s = now
        if self.log is not None:
            self.log.append(("finish", now, request.request_id))
        self.on_done(request)

    # ----------------------------------------------------------------------------- decode set
    def _context_now(self) -> int:
        return self.context_sum + self.decoding * (self.step - self.context_step)

    def _batch_context_now(self) -> int:
        return self.batch_context_sum + self.batch_decoding * (self.step - self.batch_context_step)

    def _join_decode(self, request: Request) -> None:
        self.context_sum = self._context_now()
        self.context_step = self.step
        context = request.prompt_tokens + request.generated
        self.context_sum += context
        self.decoding += 1
        if request.tier == BATCH:
            self.batch_context_sum = self._batch_context_now() + context
            self.batch_context_step = self.step
            self.batch_decoding += 1
        request.joined_step = self.step
        self.boundary_phase[(self.step - context) % self.block_size] += 1
        finish_step = self.step + request.output_tokens - request.generated
        heappush(self.finish_heap, (finish_step, request.admit_seq, request.epoch, request))

    def _leave_decode(self, request: Request) -> int:
        """Take a request out of the decode set; returns the KV blocks it holds."""
        self.context_sum = self._context_now()
        self.context_step = self.step
        joined_context = request.prompt_tokens + request.generated
        self.boundary_phase[(request.joined_step - joined_context) % self.block_size] -= 1
        request.generated += self.step - request.joined_step
        context = request.prompt_tokens + request.generated
        self.context_sum -= context
        self.decoding -= 1
        if request.tier == BATCH:
            self.batch_context_sum = self._batch_context_now() - context
            self.batch_context_step = self.step
            self.batch_decoding -= 1
        return -(-context // self.block_size)

    def _batch_leave(self, request: Request) -> None:
        del self.batch_running[request]
        self.batch_blocks -= reserved_blocks(request, self.block_size)

    def _drop_expired_rows(self, now: float) -> None:
        """Running rows of expired jobs stop here: their work is dropped, they end expired."""
        self._drop_expired = False
        expired = self.batch.expired
        for request in [r for r in self.batch_running if r.traffic in expired]:
            self._preempt(request, requeue=False)
            request.status = STATUS_EXPIRED
            request.finished_s = now
            self.on_done(request)

    def _preempt(self, victim: Request, requeue: bool = True) -> int:
        """Free the victim's blocks and hand it back to the scheduler, or a Batch row to the
        pool's queue (it recomputes); `requeue` False: it leaves (its job expired).

        Returns how many of this step's block requests it withdrew (1 if it was a decoder about
        to cross a block boundary)."""
        del self.running[victim]
        victim.preemptions += 1
        victim.epoch += 1
        withdrawn = 0
        if victim.kv_blocks:  # still prefilling
            self.prefilling.remove(victim)
            self.kv.release(victim, victim.kv_blocks)
            victim.kv_blocks = 0
        else:
            joined_context = victim.prompt_tokens + victim.generated
            phase = (victim.joined_step - joined_context) % self.block_size
            withdrawn = int(phase == self.step % self.block_size)
            self.kv.release(victim, self._leave_decode(victim))
        if victim.tier == BATCH:
            self._batch_leave(victim)
            if requeue:
                self.batch.requeue(victim)
        elif requeue:
            self.scheduler.requeue(victim)
        return withdrawn

    def stop(self) -> list[Request]:
        """The replica fails or is shut down: it hands back every request it holds (running,
        then waiting) and ignores the iteration end already scheduled."""
        self.busy_s = self.busy_s_at(self.env.now)
        self.busy = False
        self.version += 1
        return [*self.running, *self.scheduler.waiting_requests()]

    # ----------------------------------------------------------------------------- sampling
    def busy_s_at(self, now: float) -> float:
        return self.busy_s + (now - self.iteration_start_s if self.busy else 0.0)
