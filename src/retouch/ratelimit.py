"""Per-account rate limiting on the ``limits`` library (memory by default, Redis when configured).

A moving window gives the exact rule clients read in Pixelcut's docs ("5 requests per second"):
the sixth request inside any one-second window is refused. Headers follow the IETF
RateLimit-header draft (structured fields: ``RateLimit-Policy`` and ``RateLimit``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

logger = logging.getLogger(__name__)

POLICY_NAME = "default"


@dataclass(frozen=True)
class RateLimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # whole seconds until the window frees a slot

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w=1',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_after}',
        }


class RateLimiter:
    def __init__(
        self, redis_url: str | None, *, prefix: str = "retouch", fail_open: bool = True
    ) -> None:
        self._storage: Storage
        self._pool: redis.asyncio.ConnectionPool | None = None
        if redis_url:
            # Our own pool, so that shutdown can close it and an outage fails fast.
            self._pool = redis.asyncio.ConnectionPool.from_url(
                redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            self._storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=f"{prefix}:ratelimit",
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            self._storage = MemoryStorage()
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._fail_open = fail_open

    async def hit(self, account_id: int, per_second: int) -> RateLimitDecision:
        item = RateLimitItemPerSecond(per_second)
        key = str(account_id)
        try:
            allowed = await self._strategy.hit(item, key)
            stats = await self._strategy.get_window_stats(item, key)
        except StorageError:
            logger.warning(
                "rate-limit storage unavailable; failing %s",
                "open" if self._fail_open else "closed",
                exc_info=True,
            )
            return RateLimitDecision(self._fail_open, per_second, 0, 1)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return RateLimitDecision(allowed, per_second, stats.remaining, reset_after)

    async def ping(self) -> bool:
        return await self._storage.check()

    async def reset(self) -> None:
        await self._storage.reset()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
