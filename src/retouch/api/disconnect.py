"""Noticing a client that hangs up while its request waits for the CPU."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request


@asynccontextmanager
async def client_gone(request: Request) -> AsyncIterator[asyncio.Event]:
    """An event set once the client disconnects, for a request whose body has been read.

    The server keeps the connection's receive channel open after the body: its next message is
    ``http.disconnect``, sent when the client hangs up (or once the response is out).
    """
    gone = asyncio.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()
