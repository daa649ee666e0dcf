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
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from retouch import __version__
from retouch.api.errors import install_error_handlers
from retouch.api.middleware import (
    AllowedHostsMiddleware,
    MetricsListenerMiddleware,
    RequestContextMiddleware,
)
from retouch.api.openapi import install_openapi
from retouch.api.routes import (
    credits,
    docs,
    generate_background,
    health,
    outpaint,
    playground,
    remove_background,
    results,
    try_on,
    upscale,
)
from retouch.app_state import Services
from retouch.config import Settings
from retouch.logs import configure_logging
from retouch.maintenance import build_runner, sweep_forever

logger = logging.getLogger(__name__)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app; ``services`` may be passed in by tests that need to reach inside."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await run_in_threadpool(Services.create, settings)
        runner = app.state.runner = build_runner(app.state.services)
        # The first sweep recovers jobs a previous process left behind.
        background = [asyncio.create_task(sweep_forever(app.state.services, runner))]
        if runner.runs_jobs and settings.redis_url:
            background.append(asyncio.create_task(runner.consume()))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await runner.stop()
            await app.state.services.limiter.close()
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="Retouch",
        summary="Self-hosted image editing, wire-compatible with the Pixelcut API",
        version=__version__,
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN; /docs is served by routes.docs.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    # Outermost last: forwarded headers are applied first, the metrics port answers before any
    # API concern, and a refused Host is still logged with its request id.
    app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.served_hosts)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        body_timeout_seconds=settings.request_body_timeout_seconds,
    )
    if settings.metrics_port is not None:
        app.add_middleware(MetricsListenerMiddleware, port=settings.metrics_port)
    if settings.forwarded_allow_ips:
        app.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=[str(network) for network in settings.forwarded_allow_ips],
        )
    app.include_router(credits.router)
    app.include_router(health.router)
    app.include_router(remove_background.router)
    app.include_router(generate_background.router)
    app.include_router(outpaint.router)
    app.include_router(upscale.router)
    app.include_router(try_on.router)
    app.include_router(playground.router)
    app.include_router(docs.router)
    app.include_router(results.router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings come from the environment."""
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
