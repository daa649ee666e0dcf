"""The application factory: ``create_app(settings)`` builds a Retouch ASGI app.

Nothing happens at import; the lifespan creates the process's services (database engine,
ledger, rate limiter, models, result store) once, runs the sweeper, and closes it all on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from retouch import __version__
from retouch.api.errors import install_error_handlers
from retouch.api.middleware import RequestContextMiddleware
from retouch.api.openapi import install_openapi
from retouch.api.routes import (
    credits,
    generate_background,
    outpaint,
    remove_background,
    results,
    try_on,
    upscale,
)
from retouch.app_state import Services
from retouch.config import Settings
from retouch.jobs.runner import JobRunner
from retouch.jobs.try_on import KIND as TRY_ON
from retouch.jobs.try_on import run_try_on
from retouch.logs import configure_logging

logger = logging.getLogger(__name__)


def sweep_once(services: Services) -> None:
    """Delete expired results and idempotency records; refund abandoned reservations."""
    now = services.clock()
    swept = services.results.sweep(now=now)
    refunded = services.ledger.release_expired(now=now)
    forgotten = services.idempotency.sweep(now=now)
    if swept or refunded or forgotten:
        logger.info(
            "sweeper: %d results deleted, %d reservations refunded, %d idempotency keys expired",
            swept,
            refunded,
            forgotten,
        )


async def _sweep_forever(services: Services, runner: JobRunner) -> None:
    while True:
        try:
            await run_in_threadpool(sweep_once, services)
            await runner.recover()
        except Exception:
            logger.exception("sweeper failed; retrying at the next interval")
        await asyncio.sleep(services.settings.sweep_interval_seconds)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app; ``services`` may be passed in by tests that need to reach inside."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await run_in_threadpool(Services.create, settings)
        app.state.runner = JobRunner(app.state.services, {TRY_ON: run_try_on})
        # The first sweep recovers jobs a previous process left behind.
        sweeper = asyncio.create_task(_sweep_forever(app.state.services, app.state.runner))
        try:
            yield
        finally:
            sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await sweeper
            await app.state.runner.stop()
            await app.state.services.limiter.close()
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="Retouch",
        summary="Self-hosted image editing, wire-compatible with the Pixelcut API",
        version=__version__,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    app.include_router(credits.router)
    app.include_router(remove_background.router)
    app.include_router(generate_background.router)
    app.include_router(outpaint.router)
    app.include_router(upscale.router)
    app.include_router(try_on.router)
    app.include_router(results.router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings come from the environment."""
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
