"""The application factory: ``create_app(settings)`` builds a Retouch ASGI app.

Nothing happens at import; the lifespan creates the process's services (database engine,
ledger, rate limiter) once and disposes of them on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from retouch import __version__
from retouch.api.errors import install_error_handlers
from retouch.api.middleware import RequestContextMiddleware
from retouch.api.routes import credits
from retouch.app_state import Services
from retouch.config import Settings
from retouch.logs import configure_logging


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app; ``services`` may be passed in by tests that need to reach inside."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or Services.create(settings)
        try:
            yield
        finally:
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
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    app.include_router(credits.router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings come from the environment."""
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
