"""GET /v1/credits."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from retouch.api.deps import CallerDep, ServicesDep
from retouch.api.responses import error_responses
from retouch.billing import ledger

router = APIRouter(tags=["Endpoints"])


class CreditsJSONResponse(BaseModel):
    # The seed OpenAPI document types this as a string (its example shows 42); Retouch sends the
    # decimal string so strict clients generated from that document parse it.
    credits_remaining: str = Field(
        description="The number of credits remaining in your account.", examples=["42"]
    )


@router.get(
    "/v1/credits",
    summary="Get Credits",
    description="Returns the number of credits remaining in your account.",
    operation_id="get-credits",
    response_model=CreditsJSONResponse,
    responses=error_responses(401, 429, 500),
)
async def get_credits(caller: CallerDep, services: ServicesDep) -> CreditsJSONResponse:
    def read() -> int:
        with services.sessions() as session:
            return ledger.balance(session, account_id=caller.account_id)

    return CreditsJSONResponse(credits_remaining=str(await run_in_threadpool(read)))
