"""Dependencies shared by the routers, as ``Annotated`` aliases so signatures read like types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from retouch.api.middleware import add_response_headers
from retouch.app_state import Services
from retouch.billing import keys
from retouch.errors import InvalidAuthToken, InvalidParameter, RateLimitExceeded

api_key_header = APIKeyHeader(
    name="X-API-KEY",
    scheme_name="ApiKeyAuth",
    description="All API requests require a valid API key in the `X-API-KEY` header.",
    auto_error=False,
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True)
class Caller:
    """The authenticated account behind a request."""

    account_id: int
    account_name: str


def _authenticate(services: Services, secret: str | None) -> tuple[Caller, int] | None:
    with services.sessions() as session:
        account = keys.authenticate(session, secret=secret)
        if account is None:
            return None
        limit = account.rate_limit_per_second or services.settings.rate_limit_per_second
        return Caller(account.id, account.name), limit


async def current_caller(
    request: Request,
    services: ServicesDep,
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Caller:
    """Authenticate the key, then count the request against the account's rate limit."""
    found = await run_in_threadpool(_authenticate, services, api_key)
    if found is None:
        raise InvalidAuthToken()
    caller, limit = found
    request.state.account_id = caller.account_id
    decision = await services.limiter.hit(caller.account_id, limit)
    add_response_headers(request.scope, decision.headers())
    if not decision.allowed:
        raise RateLimitExceeded(headers={"Retry-After": str(decision.reset_after)})
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a POST safe to retry: the first success is replayed for 24 h "
            "without a new charge. 1-255 printable ASCII characters.",
        ),
    ] = None,
) -> str | None:
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise InvalidParameter("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
