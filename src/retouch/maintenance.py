"""Background work every Retouch process does: sweeping expired state and recovering jobs.

Shared by serving processes (in the app's lifespan) and `retouch worker`.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from fastapi.concurrency import run_in_threadpool

from retouch.app_state import Services
from retouch.config import Settings
from retouch.errors import ServiceUnavailable
from retouch.jobs.queue import RedisJobQueue
from retouch.jobs.runner import JobRunner
from retouch.jobs.try_on import KIND as TRY_ON
from retouch.jobs.try_on import run_try_on

logger = logging.getLogger(__name__)


def sweep_once(services: Services) -> None:
    """Refund abandoned reservations; delete expired idempotency records and results.

    Result storage comes last and on its own: while S3 is down, refunds must not wait for it.
    """
    now = services.clock()
    refunded = services.ledger.release_expired(now=now)
    forgotten = services.idempotency.sweep(now=now)
    try:
        swept = services.results.sweep(now=now)
    except ServiceUnavailable:
        logger.warning("sweeper: result storage unavailable; expired results wait a sweep")
        swept = 0
    if swept or refunded or forgotten:
        logger.info(
            "sweeper: %d results deleted, %d reservations refunded, %d idempotency keys expired",
            swept,
            refunded,
            forgotten,
        )


def build_runner(services: Services, *, runs_jobs: bool | None = None) -> JobRunner:
    """The job runner of a serving process (``runs_jobs`` from settings) or of a worker."""
    settings = services.settings
    queue = (
        RedisJobQueue(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url
        else None
    )
    return JobRunner(
        services,
        {TRY_ON: run_try_on},
        queue=queue,
        runs_jobs=settings.run_jobs if runs_jobs is None else runs_jobs,
    )


async def sweep_forever(
    services: Services, runner: JobRunner, *, interval: float | None = None
) -> None:
    """Sweep, then recover jobs (requeue, expire, resubmit pending), every ``interval``."""
    while True:
        try:
            await run_in_threadpool(sweep_once, services)
            await runner.recover()
        except Exception:
            logger.exception("sweeper failed; retrying at the next interval")
        await asyncio.sleep(interval or services.settings.sweep_interval_seconds)


async def run_worker(settings: Settings) -> None:
    """`retouch worker`: run jobs until SIGINT/SIGTERM, without serving HTTP.

    With Redis it blocks on the job queue; without, it looks for pending jobs in the database
    every second (fine for a handful of workers on one PostgreSQL).
    """
    services = await run_in_threadpool(Services.create, settings)
    runner = build_runner(services, runs_jobs=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(
            sweep_forever(services, runner, interval=None if settings.redis_url else 1.0)
        )
    ]
    if settings.redis_url:
        tasks.append(asyncio.create_task(runner.consume()))
    logger.info("worker started (%s)", "Redis queue" if settings.redis_url else "polling")
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.stop()
        await services.limiter.close()
        services.close()
        logger.info("worker stopped")
