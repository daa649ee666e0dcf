"""Jobs as database rows: every state change is one conditional UPDATE, so two processes (or a
cancel racing a finish) can never both win a transition."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from retouch.db.models import Job


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


@dataclass(frozen=True)
class JobView:
    id: str
    account_id: int
    kind: str
    status: JobStatus
    params: dict[str, Any]
    price: int
    attempts: int
    result_key: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None


def _view(row: Job) -> JobView:
    return JobView(
        id=row.id,
        account_id=row.account_id,
        kind=row.kind,
        status=JobStatus(row.status),
        params=json.loads(row.params),
        price=row.price,
        attempts=row.attempts,
        result_key=row.result_key,
        error_code=row.error_code,
        error_message=row.error_message,
        created_at=_aware(row.created_at),
        started_at=_aware(row.started_at) if row.started_at else None,
    )


WEBHOOK_PENDING = "pending"


def _outbox(webhook: bool) -> dict[str, Any]:
    """The values that put a finished job's webhook delivery in the outbox."""
    if not webhook:
        return {}
    return {"webhook_status": WEBHOOK_PENDING, "webhook_delivery_id": str(uuid.uuid4())}


def _webhook_due(now: datetime) -> tuple[Any, ...]:
    return (
        Job.webhook_status == WEBHOOK_PENDING,
        or_(Job.webhook_locked_until.is_(None), Job.webhook_locked_until < now),
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Retouch stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class JobStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self, *, job_id: str, account_id: int, kind: str, params: dict[str, Any], price: int
    ) -> JobView:
        with self._sessions.begin() as session:
            row = Job(
                id=job_id,
                account_id=account_id,
                kind=kind,
                status=JobStatus.PENDING,
                params=json.dumps(params),
                price=price,
                attempts=0,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            return _view(row)

    def get(self, job_id: str, *, account_id: int | None = None) -> JobView | None:
        """The job, or None when it doesn't exist or belongs to another account."""
        query = select(Job).where(Job.id == job_id)
        if account_id is not None:
            query = query.where(Job.account_id == account_id)
        with self._sessions() as session:
            row = session.scalar(query)
            return _view(row) if row else None

    def _transition(
        self,
        job_id: str,
        sources: tuple[JobStatus, ...],
        *,
        then: Callable[[Session], object] | None = None,
        **values: Any,
    ) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.status.in_(sources)).values(**values)
            )
            moved = bool(result.rowcount == 1)  # type: ignore[attr-defined]
            if moved and then is not None:
                then(session)
            return moved

    def claim(self, job_id: str) -> bool:
        """pending -> running, for exactly one caller."""
        now = datetime.now(UTC)
        return self._transition(
            job_id,
            (JobStatus.PENDING,),
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=Job.attempts + 1,
        )

    def heartbeat(self, job_id: str) -> bool:
        """Say that the process running the job is alive; False once the job left running."""
        return self._transition(job_id, (JobStatus.RUNNING,), heartbeat_at=datetime.now(UTC))

    def complete(self, job_id: str, *, result_key: str, webhook: bool = False) -> bool:
        """running -> completed; False when the job was cancelled or failed meanwhile.

        ``webhook`` puts the job's webhook delivery in the outbox in the same UPDATE.
        """
        return self._transition(
            job_id,
            (JobStatus.RUNNING,),
            status=JobStatus.COMPLETED,
            result_key=result_key,
            finished_at=datetime.now(UTC),
            **_outbox(webhook),
        )

    def fail(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        sources: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.RUNNING),
        webhook: bool = False,
        then: Callable[[Session], object] | None = None,
    ) -> bool:
        """Fail a job that hasn't finished; False when it already had.

        ``then`` runs in the same transaction once the job has moved (the refund), so nobody
        ever sees a failed job whose credits are still held."""
        return self._transition(
            job_id,
            sources,
            then=then,
            status=JobStatus.FAILED,
            error_code=code,
            error_message=message,
            finished_at=datetime.now(UTC),
            **_outbox(webhook),
        )

    def requeue(self, job_id: str) -> bool:
        """running -> pending, for a job whose process died."""
        return self._transition(job_id, (JobStatus.RUNNING,), status=JobStatus.PENDING)

    def claim_webhook(self, job_id: str, *, lease: timedelta) -> str | None:
        """Take the job's pending webhook delivery for ``lease``; its delivery id, or None when
        it is delivered, given up, or held by a live process."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, *_webhook_due(now))
                .values(webhook_locked_until=now + lease)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return session.scalar(select(Job.webhook_delivery_id).where(Job.id == job_id))

    def renew_webhook(self, job_id: str, *, lease: timedelta) -> bool:
        """Hold the delivery for another ``lease`` while it is retried; False once it ended."""
        with self._sessions.begin() as session:
            renewed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.webhook_status == WEBHOOK_PENDING)
                .values(webhook_locked_until=datetime.now(UTC) + lease)
            )
            return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]

    def finish_webhook(self, job_id: str, *, delivered: bool) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.webhook_status == WEBHOOK_PENDING)
                .values(
                    webhook_status="delivered" if delivered else "failed",
                    webhook_locked_until=None,
                )
            )

    def due_webhooks(self) -> list[str]:
        """Jobs whose webhook is pending and held by no live process (never tried, or its
        process died mid-delivery)."""
        query = select(Job.id).where(*_webhook_due(datetime.now(UTC)))
        with self._sessions() as session:
            return list(session.scalars(query))

    def with_status(
        self, status: JobStatus, *, created_before: datetime | None = None
    ) -> list[JobView]:
        query = select(Job).where(Job.status == status).order_by(Job.created_at)
        if created_before is not None:
            query = query.where(Job.created_at < created_before)
        with self._sessions() as session:
            return [_view(row) for row in session.scalars(query)]

    def silent_since(self, moment: datetime) -> list[JobView]:
        """Running jobs whose process has given no sign of life since ``moment``."""
        query = select(Job).where(
            Job.status == JobStatus.RUNNING,
            func.coalesce(Job.heartbeat_at, Job.started_at) < moment,
        )
        with self._sessions() as session:
            return [_view(row) for row in session.scalars(query)]
