"""Shared-database housekeeping for tests that use the session's PostgreSQL database."""

from __future__ import annotations

import sqlalchemy as sa

from retouch.db.models import Base


def empty_tables(url: str) -> None:
    """Delete every row, so the next test starts from an empty (still migrated) database."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
