"""The paid-operation pipeline every image endpoint runs: idempotency, reserve, work, store,
commit, with a refund and a freed idempotency key on any failure.

No HTTP here: a job worker runs the same pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
from fastapi.concurrency import run_in_threadpool

from retouch.app_state import Services
from retouch.billing import ledger
from retouch.billing.idempotency import StoredResponse
from retouch.errors import NotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """An encoded result image."""

    data: bytes
    media_type: str
    # Response headers the operation adds (generate-background's X-Retouch-Scene); kept with an
    # idempotent result, so a replay answers with them too.
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    result_key: str | None
    media_type: str
    credits_charged: int
    credits_remaining: int
    replayed: bool
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaidRequest:
    account_id: int
    request_id: str
    endpoint: str
    price: int
    idempotency_key: str | None = None
    fingerprint: str = ""
    # Only results that will be fetched later (a result_url, or an idempotent replay) are
    # written to the store; an image sent in the response needs no copy on disk.
    store_result: bool = True


async def run_paid(
    services: Services, request: PaidRequest, work: Callable[[], Awaitable[Output]]
) -> Delivery:
    idem = services.idempotency
    key = request.idempotency_key
    if key is not None:
        stored = await run_in_threadpool(
            idem.begin,
            account_id=request.account_id,
            key=key,
            fingerprint=request.fingerprint,
            request_id=request.request_id,
        )
        if stored is not None:
            return await _replay(services, request, stored)

    try:
        hold = await run_in_threadpool(
            services.ledger.reserve,
            account_id=request.account_id,
            request_id=request.request_id,
            endpoint=request.endpoint,
            amount=request.price,
        )
        try:
            async with kept_alive(
                services,
                account_id=request.account_id,
                request_id=request.request_id,
                idempotency_key=key,
            ):
                output = await work()
                result_key = None
                if request.store_result or key is not None:
                    keep = (
                        services.settings.idempotency_ttl_seconds
                        if key is not None
                        else services.settings.result_ttl_seconds
                    )
                    result_key = await run_in_threadpool(
                        services.results.put,
                        output.data,
                        media_type=output.media_type,
                        expires_at=services.clock() + timedelta(seconds=keep),
                    )
                if key is not None:
                    assert result_key is not None
                    # Recorded before the charge becomes final: a failure from here on refunds and
                    # forgets the key, so a retry runs again instead of meeting a stuck record.
                    await run_in_threadpool(
                        idem.complete,
                        account_id=request.account_id,
                        key=key,
                        request_id=request.request_id,
                        response=StoredResponse(
                            status=200,
                            result_key=result_key,
                            media_type=output.media_type,
                            headers={**output.headers, "X-Credits-Charged": str(hold.amount)},
                        ),
                    )
                await run_in_threadpool(
                    services.ledger.commit,
                    account_id=request.account_id,
                    request_id=request.request_id,
                )
        except BaseException:
            # Shielded: even a cancelled request (client gone, server stopping) gets its refund.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(
                    services.ledger.release,
                    account_id=request.account_id,
                    request_id=request.request_id,
                )
            raise
    except BaseException:
        if key is not None:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(
                    idem.abandon,
                    account_id=request.account_id,
                    key=key,
                    request_id=request.request_id,
                )
        raise

    # The charge is final and any key recorded: a failure reading the balance is only a 500
    # that a retry with the same key turns into a replay, never a second charge.
    remaining = await run_in_threadpool(_balance, services, request.account_id)
    return Delivery(
        result_key=result_key,
        media_type=output.media_type,
        credits_charged=hold.amount,
        credits_remaining=remaining,
        replayed=False,
        data=output.data,
        headers=output.headers,
    )


@asynccontextmanager
async def kept_alive(
    services: Services,
    *,
    account_id: int,
    request_id: str,
    idempotency_key: str | None,
    reservation: bool = True,
) -> AsyncIterator[None]:
    """Renew the request's reservation (unless a job owns it) and its idempotency key while the
    body runs, every third of the reservation TTL, as jobs beat their heartbeat: however long
    the request queues for the CPU, the sweeper refunds only what a dead process left, and a
    retry with the same key takes over only from a dead process."""
    every = services.settings.reservation_ttl_seconds / 3

    def renew() -> None:
        if reservation:
            services.ledger.renew(account_id=account_id, request_id=request_id)
        if idempotency_key is not None:
            services.idempotency.renew(
                account_id=account_id, key=idempotency_key, request_id=request_id
            )

    async def keep() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await run_in_threadpool(renew)
            except Exception:
                # A database blip: the next renewal may land well before the hold runs out.
                logger.warning("could not renew the holds of request %s", request_id)

    task = asyncio.create_task(keep())
    try:
        yield
    finally:
        task.cancel()


async def _replay(services: Services, request: PaidRequest, stored: StoredResponse) -> Delivery:
    assert stored.result_key is not None  # image responses always keep their result
    result = await run_in_threadpool(services.results.get, stored.result_key, now=services.clock())
    if result is None:
        # Results of idempotent requests are kept as long as their record; only an operator
        # wiping the store gets here.
        raise NotFound("The result of this idempotent request is no longer available")
    remaining = await run_in_threadpool(_balance, services, request.account_id)
    return Delivery(
        result_key=stored.result_key,
        media_type=stored.media_type,
        credits_charged=int(stored.headers.get("X-Credits-Charged", "0")),
        credits_remaining=remaining,
        replayed=True,
        data=result.data,
        headers={k: v for k, v in stored.headers.items() if k != "X-Credits-Charged"},
    )


def _balance(services: Services, account_id: int) -> int:
    with services.sessions() as session:
        return ledger.balance(session, account_id=account_id)
