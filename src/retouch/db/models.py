"""Tables: accounts, API keys, the credit ledger and credit reservations.

The ledger is the source of truth for money: ``accounts.balance`` is a cached sum of the ledger,
and every statement that changes it writes the matching ledger row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_non_negative"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_limit_per_second: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the whole key: keys carry 256 random bits, so a slow password hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, enough for a person to recognise it in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class LedgerEntry(Base):
    __tablename__ = "ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('grant', 'charge', 'refund')", name="kind"),
        Index("ix_ledger_account_id_request_id", "account_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # Signed: grants and refunds are positive, charges negative; the balance is their sum.
    amount: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Reservation(Base):
    """Credits held for one request: charged up front, refunded unless committed.

    Unique per (account, request id), which is what makes a retried reserve a no-op.
    """

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("account_id", "request_id", name="uq_reservations_account_request"),
        CheckConstraint("status IN ('reserved', 'committed', 'released')", name="status"),
        Index("ix_reservations_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A reservation left behind by a crashed process is refunded after this moment.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The first response to an ``Idempotency-Key``, replayed to retries for 24 hours."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("account_id", "key", name="uq_idempotency_records_account_key"),
        CheckConstraint("status IN ('in_progress', 'completed')", name="status"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the parsed request (endpoint, parameters, image bytes or URL, wanted format).
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(64))
    # A JSON description of the response (status, headers, result key), not the image itself.
    response: Mapped[str | None] = mapped_column(Text, default=None)
    # An in-progress record whose process died may be taken over after this moment.
    locked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """An asynchronous operation (try-on). Its credits are reserved under the job id at
    submission and committed or released when it ends, exactly once."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'running', 'completed', 'failed')", name="status"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_account_id", "account_id"),
        Index("ix_jobs_webhook_status", "webhook_status"),
    )

    # Random and unguessable; also the job's request id in the ledger.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # The validated request as JSON, with input images referenced by result-store keys.
    params: Mapped[str] = mapped_column(Text)
    price: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_key: Mapped[str | None] = mapped_column(String(128), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # Refreshed by the process running the job: when it stops, the process is presumed dead.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # The webhook outbox: a finished job with a webhook_url is "pending" until a delivery
    # succeeds or gives up. Set in the same UPDATE that finishes the job, so no crash can lose
    # it; the delivery id is the Retouch-Delivery header, the same on every try; a process
    # delivering holds the lock, and renews it while it retries.
    webhook_status: Mapped[str | None] = mapped_column(String(16), default=None)
    webhook_delivery_id: Mapped[str | None] = mapped_column(String(36), default=None)
    webhook_locked_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ServerSecret(Base):
    """A key generated for the whole deployment (see retouch.server_secrets), kept where every
    node reads it. Reading this table is enough to forge result URLs and webhook signatures."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
