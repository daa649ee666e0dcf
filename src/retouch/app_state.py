"""The long-lived services one process holds, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from retouch.billing.ledger import Ledger
from retouch.billing.pricing import Pricing
from retouch.config import Settings
from retouch.db.engine import create_db_engine, create_session_factory
from retouch.ratelimit import RateLimiter


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    ledger: Ledger
    limiter: RateLimiter
    pricing: Pricing = field(default_factory=Pricing)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        engine = create_db_engine(settings.sqlalchemy_url)
        sessions = create_session_factory(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            ledger=Ledger(
                sessions, reservation_ttl=timedelta(seconds=settings.reservation_ttl_seconds)
            ),
            limiter=RateLimiter(
                settings.redis_url,
                prefix=settings.redis_prefix,
                fail_open=settings.rate_limit_fail_open,
            ),
            pricing=Pricing.from_settings(settings),
        )

    def close(self) -> None:
        self.engine.dispose()
