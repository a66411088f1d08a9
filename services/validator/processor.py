"""One task from stream entry to final status: attempts, scoring, result, webhook.

Flow: mark the task processing; start the reference (once per task, concurrently with the
miner queries); per attempt, ask the selected miners with freshly signed requests, judge the
answers and keep the best; complete it with a conditional transition (never from final) so
that a task completes at most once even when a reclaimed copy races the original; after
MAX_ATTEMPTS attempts without a usable answer, fail it with a readable reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter

from redis.asyncio import Redis

from services.validator import cancellation, inputs, selection, storewait
from services.validator.client import MinerClient, MinerRequest, MinerResponse
from services.validator.consumer import Delivery, StreamQueue
from services.validator.finality import Finality
from services.validator.judging import (
    DECLINED,
    Scored,
    attempt_record,
    failure_reason,
    score_answers,
    stats_outcomes,
)
from services.validator.metrics import Metrics
from services.validator.miners import Miner, MinerRegistry
from services.validator.minerstats import MinerStats
from services.validator.reference import Reference, ReferenceClient
from services.validator.settings import ValidatorSettings
from services.validator.tasktypes import TASK_TYPES, TaskSpec
from services.validator.webhooks import Webhooks, webhook_output
from shared import keys, timeline
from shared.blobs import BlobUnavailable
from shared.events import EventHub
from shared.logging import get_logger
from shared.store import TaskStore
from shared.tasks import FINAL_STATUSES, Status, Task

log = get_logger("validator.processor")

DURATIONS_KEPT = 100
DEAD_LETTER_MAXLEN = 10_000


class Processor:
    """Works on deliveries handed over by the consumer and the reclaimer."""

    def __init__(
        self,
        *,
        redis: Redis,
        store: TaskStore,
        queue: StreamQueue,
        registry: MinerRegistry,
        stats: MinerStats,
        client: MinerClient,
        references: ReferenceClient,
        webhooks: Webhooks,
        metrics: Metrics,
        settings: ValidatorSettings,
        hub: EventHub,
    ) -> None:
        self.redis = redis
        self.hub = hub
        self.store = store
        self.queue = queue
        self.registry = registry
        self.stats = stats
        self.client = client
        self.references = references
        self.webhooks = webhooks
        self.metrics = metrics
        self.settings = settings
        self.finality = Finality(redis, store)
        self.policy = selection.SelectionPolicy(
            size=settings.max_miners_per_request,
            max_in_flight=settings.miner_max_in_flight,
            failure_threshold=settings.miner_failure_threshold,
            cooldown=settings.miner_cooldown,
        )
        self.in_flight: Counter[str] = Counter()
        # Signalled whenever miner requests finish, so tasks waiting for capacity wake up.
        self._capacity = asyncio.Condition()

    async def handle(self, delivery: Delivery) -> None:
        """Process one entry to the end, then acknowledge and delete it; through Redis
        outages and failovers (see :meth:`Finality.hold`)."""
        await self.finality.hold(
            delivery.task_id,
            lambda: self._handle(delivery),
            lambda: self.queue.finish(delivery),
        )

    async def _handle(self, delivery: Delivery) -> None:
        task = await self.store.get(delivery.task_id) if delivery.task_id else None
        if task is None:
            log.warning("task_missing", task_id=delivery.task_id, entry=delivery.entry_id)
        elif task.status in FINAL_STATUSES or not await self.store.transition(
            task.task_id, Status.PROCESSING, expect=[Status.PENDING, Status.PROCESSING]
        ):
            # Finished by another replica; make sure its webhook is queued (idempotent).
            await self._notify(task.task_id)
        else:
            log.info(
                "task_started",
                task_id=task.task_id,
                task_type=task.task_type.value,
                priority=task.priority.value,
                reclaimed=delivery.reclaimed,
            )
            work = self._process_stored(task)
            if await cancellation.unless_cancelled(self.hub, self.redis, task.task_id, work):
                await self._abandoned(task)

    async def _abandoned(self, task: Task) -> None:
        """The owner cancelled the task while it was processed: its work has been stopped."""
        self.metrics.tasks.labels(task.task_type.value, "cancelled").inc()
        self.metrics.ops.finished(task, Status.CANCELLED)
        log.info("task_cancelled", task_id=task.task_id, attempts=task.attempts)
        await self._notify(task.task_id)

    async def _process_stored(self, task: Task | None) -> None:
        """:meth:`_process`, parking the task as pending while the blob store is away."""
        while task is not None:
            try:
                await self._process(task)
                return
            except BlobUnavailable:
                task = await storewait.park(self.store, task)

    async def _process(self, task: Task) -> None:
        spec = TASK_TYPES[task.task_type]
        prepared = await inputs.prepare(self.store, task, spec, float(self.settings.task_timeout))
        if prepared is None:
            await self.fail(task, "the task's input has expired or is missing")
            return
        source, request = prepared
        data = source.text
        reference = asyncio.create_task(spec.reference(self.references, source, task.language))
        asked: set[str] = set()
        failures: Counter[str] = Counter()
        attempt = task.attempts
        try:
            while attempt < self.settings.max_attempts:
                if attempt > task.attempts:
                    await asyncio.sleep(self.settings.retry_delay)
                if await cancellation.cancelled(self.redis, task.task_id):
                    raise cancellation.TaskCancelled(task.task_id)
                chosen = await self._wait_for_miners(asked)
                if not chosen:
                    # Busy or absent miners are nobody's failure: no attempt was spent on
                    # them, but the task cannot wait for ever either.
                    failures["no miners available"] += 1
                    self.metrics.attempts.labels(task.task_type.value, "no_miners").inc()
                    break
                try:
                    attempt = await self.redis.hincrby(keys.task(task.task_id), "attempts", 1)
                    task.attempts = attempt
                    best = await self._attempt(
                        task, spec, request, data, reference, attempt, asked, failures, chosen
                    )
                finally:
                    await self._release(chosen)
                if best is not None:
                    await self.complete(task, best)
                    return
        finally:
            reference.cancel()
        await self.fail(task, failure_reason(attempt, failures, _outcome(reference)))

    async def _wait_for_miners(self, asked: set[str]) -> list[Miner]:
        """Reserve the miners for the next attempt, waiting up to TASK_TIMEOUT if all are busy.

        Every miner can be at this replica's in-flight cap during a burst; the task then
        waits for a request to finish instead of spending an attempt on nobody. The chosen
        miners' in-flight slots are taken before any further await, so concurrent tasks
        never overshoot the cap; :meth:`_release` gives them back.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.task_timeout
        while True:
            miners = self.registry.miners
            states = await self.stats.states([m.hotkey for m in miners])
            chosen = selection.choose(
                miners,
                states,
                self.in_flight,
                self.policy,
                now=time.time(),
                already_asked=frozenset(asked),
            )
            for m in chosen:
                self.in_flight[m.hotkey] += 1
            remaining = deadline - loop.time()
            if chosen or remaining <= 0:
                return chosen
            async with self._capacity:
                # Wake on capacity, or within a second for a miner list refresh.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._capacity.wait(), min(remaining, 1.0))

    async def _release(self, miners: list[Miner]) -> None:
        for m in miners:
            self.in_flight[m.hotkey] -= 1
        async with self._capacity:
            self._capacity.notify_all()

    async def _attempt(
        self,
        task: Task,
        spec: TaskSpec,
        request: MinerRequest,
        data: bytes,
        reference: asyncio.Task[Reference],
        attempt: int,
        asked: set[str],
        failures: Counter[str],
        chosen: list[Miner],
    ) -> Scored | None:
        """One round of queries to ``chosen``; the best usable answer, or None."""
        started = time.time()
        asked.update(m.hotkey for m in chosen)
        responses = await self._ask(chosen, request, spec.binary_output)
        answered = [r for r in responses if r.ok]
        # Answers need the reference; so do declines (is the input unprocessable?). It is
        # usually ready: it ran while the miners worked.
        declined = any(r.error == DECLINED for r in responses)
        ref = await reference if answered or declined else None
        scored = [] if ref is None else await self._score(task, spec, data, ref, answered)
        for r in responses:
            if not r.ok:
                failures[r.error or "failed"] += 1
        failures.update(s.judged.problem or "scored 0" for s in scored if not s.usable)
        usable = [s for s in scored if s.usable]
        best = max(usable, key=lambda s: s.score) if usable else None
        self.metrics.ops.answered(responses, {s.response.miner.hotkey for s in usable})
        latencies = {r.miner.hotkey: r.latency for r in responses if r.ok}
        await self.stats.record(stats_outcomes(responses, scored, ref), latencies)
        record = attempt_record(attempt, self.queue.consumer, started, responses, scored, best)
        await self.redis.rpush(keys.task_attempts(task.task_id), json.dumps(record))
        outcome = "won" if best else "no_usable_answer"
        self.metrics.attempts.labels(task.task_type.value, outcome).inc()
        return best

    async def _ask(
        self, miners: list[Miner], request: MinerRequest, binary: bool
    ) -> list[MinerResponse]:
        responses = await asyncio.gather(
            *(self.client.query(m, request, binary=binary) for m in miners)
        )
        for r in responses:
            self.metrics.miner_latency.labels(request.task_type).observe(r.latency)
            self.metrics.miner_responses.labels(request.task_type, r.error or "ok").inc()
        return list(responses)

    async def _score(
        self,
        task: Task,
        spec: TaskSpec,
        data: bytes,
        reference: Reference,
        answered: list[MinerResponse],
    ) -> list[Scored]:
        if not answered:
            return []
        scored = await score_answers(
            spec, self.references, data, task.language, reference, answered, self.settings
        )
        for s in scored:
            self.metrics.scores.labels(task.task_type.value).observe(s.score)
        return scored

    async def complete(self, task: Task, best: Scored) -> bool:
        """Store the winning answer; False if another copy of the task finished first."""
        result = best.result()
        while True:
            segments = None  # the blob of a long transcript's segments, once written
            try:
                fields, segments = await self.store.data.place_result(task.task_id, result)
                # Pending is expected too: after a failover the new master may not have the
                # (unconfirmed) processing mark; only a final status means someone else
                # finished.
                moved = await self.finality.finalize(
                    task.task_id,
                    Status.COMPLETED,
                    expect=[Status.PENDING, Status.PROCESSING],
                    fields=fields,
                    output=best.response.output,
                    binary_output=TASK_TYPES[task.task_type].binary_output,
                )
                break
            except BlobUnavailable:
                await self.store.data.discard(segments)
                # The answer waits in memory; the task stays processing, its entry held.
                await storewait.wait_for_blobs(self.store.blobs, "output", task.task_id)
        if not moved:
            await self.store.data.discard(segments)
            self.metrics.tasks.labels(task.task_type.value, "lost_race").inc()
            log.info("task_already_final", task_id=task.task_id)
            return False
        # Counted first: a full Redis refusing the samples below, or a kill, must not hide
        # the completion.
        self.metrics.tasks.labels(task.task_type.value, "completed").inc()
        finished = self.metrics.ops.finished(task, Status.COMPLETED)
        # The scores, not the transcript: segments are counted (a miner may send 10,000).
        scores = {k: v for k, v in result.items() if k != "segments"}
        shown = len(best.response.segments or ())
        log.info("task_completed", task_id=task.task_id, segments=shown, **scores)
        async with self.redis.pipeline(transaction=True) as pipe:
            timeline.record(pipe, Status.COMPLETED, task.created_at, finished)
            pipe.lpush(keys.durations(task.task_type.value), finished - task.created_at)
            pipe.ltrim(keys.durations(task.task_type.value), 0, DURATIONS_KEPT - 1)
            await pipe.execute()
        await self._finished(task)
        return True

    async def fail(self, task: Task, reason: str) -> bool:
        """Fail the task with a reason the client can read; False if it was already final."""
        moved = await self.finality.finalize(
            task.task_id,
            Status.FAILED,
            expect=[Status.PENDING, Status.PROCESSING],
            fields={"error": reason},
        )
        if moved:
            self.metrics.tasks.labels(task.task_type.value, "failed").inc()
            self.metrics.ops.finished(task, Status.FAILED)
            log.info("task_failed", task_id=task.task_id, reason=reason)
            await self._finished(task)
            await timeline.count(self.redis, Status.FAILED, task.created_at)
        return moved

    async def abandon(self, delivery: Delivery, deliveries: int) -> None:
        """Dead-letter an entry delivered too often, and fail its task."""
        await self.redis.xadd(
            keys.DEAD_LETTER_STREAM,
            {
                "task_id": delivery.task_id,
                "priority": delivery.priority.value,
                "entry_id": delivery.entry_id,
                "deliveries": deliveries,
                "at": time.time(),
            },
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        self.metrics.reclaims.labels("dead_lettered").inc()
        log.warning("entry_dead_lettered", task_id=delivery.task_id, deliveries=deliveries)
        task = await self.store.get(delivery.task_id) if delivery.task_id else None
        if task is not None:
            await self.fail(
                task,
                f"abandoned: its queue entry was delivered {deliveries} times without finishing",
            )
        await self.queue.finish(delivery)

    async def _finished(self, task: Task) -> None:
        """After a final status: drop the input (unless INPUT_RETENTION keeps it), notify."""
        try:
            await self.store.release_input(task)
        except BlobUnavailable as exc:
            # Already scheduled by the transition: the janitor deletes it when it can.
            log.warning("input_release_deferred", task_id=task.task_id, error=str(exc))
        await self._notify(task.task_id)

    async def _notify(self, task_id: str) -> None:
        final = await self.store.get(task_id)
        if final is None or final.status not in FINAL_STATUSES or not final.callback_url:
            return
        await self.webhooks.enqueue(final, await webhook_output(self.store, final))


def _outcome(reference: asyncio.Task[Reference]) -> Reference | None:
    """The reference, if it finished (a cancelled or failed one has nothing to say)."""
    if not reference.done() or reference.cancelled() or reference.exception() is not None:
        return None
    return reference.result()
