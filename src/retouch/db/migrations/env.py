"""Alembic environment: the URL comes from ``retouch.db.migrate.alembic_config``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from retouch.db.engine import create_db_engine
from retouch.db.models import Base

# Any fixed number: a PostgreSQL advisory lock so that several nodes starting at once migrate
# one after another instead of racing on the same DDL.
MIGRATION_LOCK_ID = 0x5E70C4


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()
    finally:
        engine.dispose()


run_migrations()
