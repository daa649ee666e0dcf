"""Operations endpoints: liveness and readiness (no API key needed). Metrics are served on
their own port (``api.middleware.MetricsListenerMiddleware``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from retouch.api.deps import ServicesDep
from retouch.app_state import Services

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="Liveness", description="200 while the process serves requests.")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database_ok(services: Services) -> bool:
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the database, Redis (if configured), the result storage and the "
    "models are usable; 503 with the failing checks otherwise.",
    responses={503: {"description": "Not ready; `checks` says what failed."}},
)
async def readyz(services: ServicesDep) -> Response:
    checks: dict[str, Any] = {"database": await run_in_threadpool(_database_ok, services)}
    if services.settings.redis_url:
        try:
            checks["redis"] = await services.limiter.ping()
        except Exception:
            checks["redis"] = False
    checks["storage"] = await run_in_threadpool(services.results.ping)
    # Engines are loaded before the app accepts requests; being here means they are in memory.
    checks["models"] = services.engines is not None
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
