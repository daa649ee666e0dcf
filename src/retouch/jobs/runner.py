"""Runs jobs in this process: bounded concurrency, a time limit, crash recovery, refunds.

Any process may run any pending job: claiming is a conditional UPDATE, so a job scheduled twice
(by its own process and by another's recovery sweep) still runs once. Credits were reserved under
the job id at submission; the runner commits them when the job completes and releases them on
every other ending, after winning that ending's transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
from fastapi.concurrency import run_in_threadpool

from retouch.app_state import Services
from retouch.errors import RetouchError, ServiceUnavailable
from retouch.jobs.documents import job_document
from retouch.jobs.queue import QueueUnavailable, RedisJobQueue
from retouch.jobs.store import FINISHED, JobStatus, JobStore, JobView
from retouch.jobs.webhooks import account_key, deliver
from retouch.pipeline import Output

logger = logging.getLogger(__name__)

Handler = Callable[[Services, JobView, dict[str, bytes]], Output]

# A running job whose process has missed this many heartbeats is presumed orphaned.
MISSED_HEARTBEATS = 3


def job_error(exc: BaseException) -> tuple[str, str]:
    """The (error_code, message) a failed job reports for ``exc``."""
    if isinstance(exc, ServiceUnavailable):
        return "service_unavailable", exc.message
    if isinstance(exc, RetouchError) and exc.status == 400:
        # The input turned out unusable (undecodable, no person found...): the client's to fix.
        return "invalid_parameter", exc.message
    return "unexpected_error", "The job failed unexpectedly"


def _hooked(job: JobView) -> bool:
    return bool(job.params["options"].get("webhook_url"))


class JobRunner:
    """Submits and runs jobs. With a Redis queue, submissions go onto it and this process runs
    jobs only when ``runs_jobs`` (a worker, or a serving process allowed to); without one, this
    process runs what it submits and what its sweeps find pending.

    While Redis is unreachable nothing is refused: a submission stays pending in the database
    (run here when this process runs jobs), and consumers look for pending jobs in the database
    every second until the queue answers again.
    """

    def __init__(
        self,
        services: Services,
        handlers: dict[str, Handler],
        *,
        queue: RedisJobQueue | None = None,
        runs_jobs: bool = True,
    ) -> None:
        self.services = services
        self.store = JobStore(services.sessions)
        self._handlers = handlers
        self._queue = queue
        self.runs_jobs = runs_jobs
        settings = services.settings
        self._slots = asyncio.Semaphore(settings.job_concurrency)
        self._timeout = settings.job_timeout_seconds
        self._heartbeat = settings.job_heartbeat_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        # Jobs this process has scheduled and not yet finished with, so repeated database polls
        # during a queue outage don't stack up tasks for the same job; likewise for webhooks.
        self._scheduled: set[str] = set()
        self._delivering: set[str] = set()
        self._lease = timedelta(seconds=MISSED_HEARTBEATS * self._heartbeat)

    @property
    def reservation_ttl(self) -> timedelta:
        """How long a job's credits may stay reserved: its whole possible life (waiting, then
        every attempt with its orphan detection), plus a sweep, before a refund is assumed."""
        settings = self.services.settings
        attempt = self._timeout + MISSED_HEARTBEATS * self._heartbeat
        return timedelta(
            seconds=settings.job_queue_timeout_seconds
            + settings.job_max_attempts * attempt
            + 2 * settings.sweep_interval_seconds
        )

    async def submit(self, job_id: str) -> None:
        if self._queue is not None:
            try:
                await self._queue.push(job_id)
                return
            except QueueUnavailable:
                logger.warning(
                    "job queue unavailable; job %s waits in the database for a runner", job_id
                )
        if self.runs_jobs:
            self.schedule(job_id)

    def schedule(self, job_id: str) -> None:
        if job_id in self._scheduled:
            return
        self._scheduled.add(job_id)
        self._spawn(self._run(job_id))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def consume(self) -> None:
        """Pop job ids from the queue for as long as this runs, one free slot at a time."""
        assert self._queue is not None
        outage = False
        while True:
            await self._slots.acquire()
            try:
                job_id = await self._queue.pop(timeout=1)
            except QueueUnavailable:
                self._slots.release()
                if not outage:
                    logger.warning("job queue unavailable; polling the database until it returns")
                outage = True
                await self._schedule_pending()
                await asyncio.sleep(1)
                continue
            except BaseException:
                self._slots.release()
                raise
            if outage:
                logger.info("job queue reachable again")
                outage = False
            if job_id is None:
                self._slots.release()
                continue
            self._spawn(self._run_in_slot(job_id))

    async def _schedule_pending(self) -> None:
        try:
            pending = await run_in_threadpool(self.store.with_status, JobStatus.PENDING)
        except Exception:
            logger.warning("could not look for pending jobs", exc_info=True)
            return
        for job in pending:
            self.schedule(job.id)

    async def _run_in_slot(self, job_id: str) -> None:
        try:
            await self._run_claimed(job_id)
        finally:
            self._slots.release()

    async def recover(self) -> None:
        """Requeue or fail jobs whose process died, expire stale ones, schedule what's pending.

        Runs at start-up and with every sweep. A running job counts as abandoned once its
        process has missed ``MISSED_HEARTBEATS`` heartbeats: a live one beats while it works.
        """
        settings = self.services.settings
        now = self.services.clock()
        abandoned_before = now - timedelta(seconds=MISSED_HEARTBEATS * self._heartbeat)
        for job in await run_in_threadpool(self.store.silent_since, abandoned_before):
            if job.attempts < settings.job_max_attempts:
                if await run_in_threadpool(self.store.requeue, job.id):
                    logger.warning("job %s was interrupted; retrying", job.id)
            else:
                await self._fail(job, "unexpected_error", "The job was interrupted repeatedly")
        expired_before = now - timedelta(seconds=settings.job_queue_timeout_seconds)
        for job in await run_in_threadpool(
            self.store.with_status, JobStatus.PENDING, created_before=expired_before
        ):
            await self._fail(job, "job_expired", "The job waited too long to start and expired")
        for job in await run_in_threadpool(self.store.with_status, JobStatus.PENDING):
            await self.submit(job.id)
        for job_id in await run_in_threadpool(self.store.due_webhooks):
            self._spawn_delivery(job_id)

    async def cancel(self, job: JobView) -> bool:
        """Cancel a pending or running job; False when it had already finished."""
        return await self._fail(job, "job_cancelled", "The job was cancelled")

    async def wait(
        self, job_id: str, *, seconds: float, gone: asyncio.Event | None = None
    ) -> JobView:
        """The job once finished, or as it stands after ``seconds``.

        When ``gone`` is set (the waiting client hung up) the wait ends: a job still pending is
        cancelled and refunded, one already running is left to finish (and be charged).
        """
        with anyio.move_on_after(seconds):
            while True:
                job = await run_in_threadpool(self.store.get, job_id)
                assert job is not None
                if job.status in FINISHED:
                    return job
                if gone is not None and gone.is_set():
                    if job.status == JobStatus.PENDING:
                        await self._fail(
                            job,
                            "job_cancelled",
                            "The job was cancelled: its client disconnected before it started",
                            sources=(JobStatus.PENDING,),
                        )
                    break
                await asyncio.sleep(0.1)
        job = await run_in_threadpool(self.store.get, job_id)
        assert job is not None
        return job

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._queue is not None:
            await self._queue.close()

    async def _fail(
        self,
        job: JobView,
        code: str,
        message: str,
        *,
        sources: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.RUNNING),
    ) -> bool:
        ledger = self.services.ledger
        with anyio.CancelScope(shield=True):
            if not await run_in_threadpool(
                partial(
                    self.store.fail,
                    job.id,
                    code=code,
                    message=message,
                    sources=sources,
                    webhook=_hooked(job),
                    then=lambda session: ledger.release_in(
                        session, account_id=job.account_id, request_id=job.id
                    ),
                )
            ):
                return False
        self._notify(job)
        return True

    def _notify(self, job: JobView) -> None:
        """POST the final job document to the job's webhook, if it has one, in the background:
        a slow receiver must not hold a job slot. The delivery is already in the outbox (the
        job's final UPDATE put it there), so a crash or a stop only delays it."""
        if _hooked(job):
            self._spawn_delivery(job.id)

    def _spawn_delivery(self, job_id: str) -> None:
        if job_id in self._delivering:
            return
        self._delivering.add(job_id)
        self._spawn(self._deliver(job_id))

    async def _deliver(self, job_id: str) -> None:
        try:
            delivery_id = await run_in_threadpool(
                self.store.claim_webhook, job_id, lease=self._lease
            )
            if delivery_id is None:
                return  # delivered meanwhile, or another live process is delivering it
            renew = partial(self.store.renew_webhook, job_id, lease=self._lease)
            keep = asyncio.create_task(self._keep_alive(renew, f"the webhook of job {job_id}"))
            try:
                delivered = await self._send(job_id, delivery_id)
            finally:
                keep.cancel()
            # Not shielded on purpose: a delivery cut short by a stop stays pending, and the
            # next process to sweep resumes it once the lease lapses.
            await run_in_threadpool(self.store.finish_webhook, job_id, delivered=delivered)
        finally:
            self._delivering.discard(job_id)

    async def _send(self, job_id: str, delivery_id: str) -> bool:
        services = self.services
        settings = services.settings
        job = await run_in_threadpool(self.store.get, job_id)
        assert job is not None
        base = str(settings.public_base_url or f"http://{settings.host}:{settings.port}")
        document = job_document(job, result_url=lambda key: services.result_url(base, key))
        return await deliver(
            job.params["options"]["webhook_url"],
            document,
            secret=account_key(services.webhook_master, job.account_id),
            allowed_networks=settings.webhook_allow_networks,
            attempts=settings.webhook_attempts,
            timeout=settings.webhook_timeout_seconds,
            delivery_id=delivery_id,
        )

    async def _run(self, job_id: str) -> None:
        try:
            async with self._slots:
                await self._run_claimed(job_id)
        finally:
            self._scheduled.discard(job_id)

    async def _run_claimed(self, job_id: str) -> None:
        if not await run_in_threadpool(self.store.claim, job_id):
            return  # another process (or schedule) took it, or it was cancelled
        job = await run_in_threadpool(self.store.get, job_id)
        assert job is not None
        beat = asyncio.create_task(
            self._keep_alive(partial(self.store.heartbeat, job_id), f"job {job_id}")
        )
        try:
            try:
                output = await asyncio.wait_for(self._execute(job), self._timeout)
            except TimeoutError:
                await self._fail(job, "request_timeout", "The job did not finish in time")
                return
            except Exception as exc:
                if not isinstance(exc, RetouchError):
                    logger.exception("job %s failed", job_id)
                await self._fail(job, *job_error(exc))
                return
            await self._finish(job, output)
        finally:
            beat.cancel()

    async def _keep_alive(self, refresh: Callable[[], bool], what: str) -> None:
        """Call ``refresh`` every heartbeat until it returns False (the work ended), so other
        processes know this one is alive and leave ``what`` to it."""
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                if not await run_in_threadpool(refresh):
                    return
            except Exception:
                # A database blip: the next beat may land; three missed ones mean a takeover.
                logger.warning("could not record the heartbeat of %s", what, exc_info=True)

    async def _execute(self, job: JobView) -> Output:
        results = self.services.results
        now = self.services.clock()
        inputs: dict[str, bytes] = {}
        for name, key in job.params["inputs"].items():
            stored = await run_in_threadpool(results.get, key, now=now)
            if stored is None:
                raise RetouchError("The job's input images are no longer available")
            inputs[name] = stored.data
        handler = self._handlers[job.kind]
        return await self.services.executor.run(handler, self.services, job, inputs)

    async def _finish(self, job: JobView, output: Output) -> None:
        services = self.services
        with anyio.CancelScope(shield=True):
            key = await run_in_threadpool(
                services.results.put,
                output.data,
                media_type=output.media_type,
                expires_at=services.clock()
                + timedelta(seconds=services.settings.job_retention_seconds),
            )
            if not await run_in_threadpool(
                self.store.complete, job.id, result_key=key, webhook=_hooked(job)
            ):
                # The job was cancelled while it ran: the cancel refunded it (and notified),
                # and the result is left for the sweeper.
                return
            await run_in_threadpool(
                services.ledger.commit, account_id=job.account_id, request_id=job.id
            )
        services.metrics.credits.labels(job.kind).inc(job.price)
        self._notify(job)
