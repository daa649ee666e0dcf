"""Where submitted job ids go: straight to this process's runner, or onto a Redis list that any
`retouch worker` (or serving process) pops from. The database stays the source of truth: the
queue only says "look at this job", so a lost or duplicated id costs nothing but a sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
from redis.exceptions import RedisError


class QueueUnavailable(Exception):
    """Redis could not be reached; the job is still in the database, only its nudge is lost."""


@asynccontextmanager
async def _unavailable_on_failure() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise QueueUnavailable(str(exc)) from exc


class RedisJobQueue:
    def __init__(self, url: str, *, prefix: str) -> None:
        # Popping blocks for up to a second, so reads need a longer socket timeout than that.
        self._redis = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._key = f"{prefix}:jobs"

    async def push(self, job_id: str) -> None:
        async with _unavailable_on_failure():
            await self._redis.lpush(self._key, job_id)

    async def pop(self, *, timeout: float) -> str | None:
        async with _unavailable_on_failure():
            item = await self._redis.brpop([self._key], timeout=timeout)
        if not item:
            return None
        job_id = item[1]
        return job_id.decode() if isinstance(job_id, bytes) else job_id

    async def close(self) -> None:
        await self._redis.aclose()
