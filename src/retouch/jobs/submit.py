"""Submitting a paid job: pipeline.py's sequence for work that runs as a job, written once.

The idempotency key is claimed first (a replay loads and decodes nothing), then the balance is
checked before any image is fetched or decoded, the inputs are inspected, the price reserved
under the job id (the runner commits or releases it when the job ends), the inputs stored and
the job row created. No HTTP here: the route parses, calls ``submit_try_on`` and renders.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from fastapi.concurrency import run_in_threadpool

from retouch.app_state import Services
from retouch.billing.idempotency import StoredResponse
from retouch.errors import InsufficientCredits, NotFound
from retouch.jobs.runner import JobRunner
from retouch.jobs.store import FINISHED, JobStatus, JobView
from retouch.jobs.try_on import KIND, inspect_inputs
from retouch.pipeline import kept_alive

Loader = Callable[[], Awaitable[dict[str, bytes]]]


@dataclass(frozen=True)
class TryOnOrder:
    account_id: int
    # What the job runs with, as stored on its row (the parsed request without image URLs).
    options: dict[str, Any]
    preprocess_garment: bool
    wait: bool
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True)
class Submission:
    """The job as it stands when the call answers (finished, when waited for in time)."""

    job: JobView
    credits_charged: int
    credits_remaining: int
    replayed: bool


async def submit_try_on(
    services: Services,
    runner: JobRunner,
    order: TryOnOrder,
    load: Loader,
    *,
    gone: asyncio.Event | None = None,
) -> Submission:
    """Create and queue a try-on job (``load`` fetches the images), and with ``order.wait``
    wait for it. ``gone`` is set when the client hangs up: work that has not started is then
    dropped and refunded.

    With an idempotency key, the key stays claimed while the call runs (409 for a retry
    meanwhile) and is then bound to the job: a replay answers that job as it stands, waiting
    for it again when the order waits. A waited-for job that failed frees the key instead, as a
    failed image request does, so that a retry runs again.
    """
    idem = services.idempotency
    key = order.idempotency_key
    job_id = str(uuid.uuid4())
    if key is not None:
        stored = await run_in_threadpool(
            idem.begin,
            account_id=order.account_id,
            key=key,
            fingerprint=order.fingerprint,
            request_id=job_id,
        )
        if stored is not None:
            return await _replay(services, runner, order, stored)

    holding = kept_alive(
        services,
        account_id=order.account_id,
        request_id=job_id,
        idempotency_key=key,
        reservation=False,  # the job's reservation lasts as long as the job may
    )
    try:
        async with holding:
            job, charged = await _create(services, runner, order, job_id, load, gone)
    except BaseException:
        if key is not None:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(
                    idem.abandon, account_id=order.account_id, key=key, request_id=job_id
                )
        raise

    try:
        if order.wait:
            async with kept_alive(
                services,
                account_id=order.account_id,
                request_id=job_id,
                idempotency_key=key,
                reservation=False,
            ):
                job = await runner.wait(
                    job_id, seconds=services.settings.job_wait_seconds, gone=gone
                )
    finally:
        if key is not None:
            # Also when the wait is cut short: the job exists and may still be charged, so a
            # retry must find it rather than submit (and pay for) a second one.
            with anyio.CancelScope(shield=True):
                await _settle_key(services, order, job, charged)

    remaining = await run_in_threadpool(services.ledger.balance, account_id=order.account_id)
    return Submission(job, charged, remaining, replayed=False)


async def _create(
    services: Services,
    runner: JobRunner,
    order: TryOnOrder,
    job_id: str,
    load: Loader,
    gone: asyncio.Event | None,
) -> tuple[JobView, int]:
    settings = services.settings
    pricing = services.pricing
    # The exact price is known only once the garment is decoded; an account that cannot pay
    # even the least of it is refused before any pixel work.
    least = pricing.try_on(garment_extraction=False)
    if await run_in_threadpool(services.ledger.balance, account_id=order.account_id) < least:
        raise InsufficientCredits(
            f"This request costs at least {least} credit{'s' if least != 1 else ''} "
            "and the account does not have enough"
        )
    inputs = await load()
    inspected = await services.executor.run_unless(
        gone, inspect_inputs, settings, inputs, services.engines.try_on
    )
    price = pricing.try_on(
        garment_extraction=order.preprocess_garment and inspected.garment_needs_extraction
    )
    hold = await run_in_threadpool(
        services.ledger.reserve,
        account_id=order.account_id,
        request_id=job_id,
        endpoint=KIND,
        amount=price,
        ttl=runner.reservation_ttl,
    )
    try:
        expires_at = services.clock() + timedelta(seconds=settings.job_retention_seconds)
        keys = {
            name: await run_in_threadpool(
                services.results.put,
                data,
                media_type=inspected.media_types[name],
                expires_at=expires_at,
            )
            for name, data in inputs.items()
        }
        job = await run_in_threadpool(
            runner.store.create,
            job_id=job_id,
            account_id=order.account_id,
            kind=KIND,
            params={"inputs": keys, "options": order.options},
            price=price,
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(
                services.ledger.release, account_id=order.account_id, request_id=job_id
            )
        raise
    await runner.submit(job_id)
    return job, hold.amount


async def _settle_key(services: Services, order: TryOnOrder, job: JobView, charged: int) -> None:
    assert order.idempotency_key is not None
    if order.wait and job.status == JobStatus.FAILED:
        await run_in_threadpool(
            services.idempotency.abandon,
            account_id=order.account_id,
            key=order.idempotency_key,
            request_id=job.id,
        )
        return
    await run_in_threadpool(
        services.idempotency.complete,
        account_id=order.account_id,
        key=order.idempotency_key,
        request_id=job.id,
        response=StoredResponse(
            status=202, job_id=job.id, headers={"X-Credits-Charged": str(charged)}
        ),
    )


async def _replay(
    services: Services, runner: JobRunner, order: TryOnOrder, stored: StoredResponse
) -> Submission:
    assert stored.job_id is not None  # a try-on fingerprint only ever matches a job's record
    job = await run_in_threadpool(runner.store.get, stored.job_id, account_id=order.account_id)
    if job is None:
        raise NotFound("The job of this idempotent request is no longer available")
    if order.wait and job.status not in FINISHED:
        job = await runner.wait(job.id, seconds=services.settings.job_wait_seconds)
    if order.wait and job.status == JobStatus.FAILED:
        assert order.idempotency_key is not None
        await run_in_threadpool(
            services.idempotency.abandon,
            account_id=order.account_id,
            key=order.idempotency_key,
            request_id=job.id,
        )
    remaining = await run_in_threadpool(services.ledger.balance, account_id=order.account_id)
    charged = int(stored.headers.get("X-Credits-Charged", "0"))
    return Submission(job, charged, remaining, replayed=True)
