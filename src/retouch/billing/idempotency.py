"""Idempotency keys (IETF ``Idempotency-Key`` draft, Stripe's semantics).

The first request with a key owns it while it runs; a retry meanwhile gets 409, a retry after
success gets the stored response again (no new charge), and the same key on a different request
gets 422. Only successes are stored: after a failure the key is free again, so a client retrying
a 5xx, a 429 or an exhausted balance gets a fresh attempt rather than a replayed error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retouch.db.models import IdempotencyRecord
from retouch.errors import IdempotencyKeyInUse, IdempotencyKeyReused

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


@dataclass(frozen=True)
class StoredResponse:
    """What is needed to answer a replay: the result lives in the result store under
    ``result_key`` (kept as long as the record), so it is re-served or re-signed, not copied.
    A job submission stores its ``job_id`` instead: a replay answers that job as it stands."""

    status: int
    result_key: str | None = None
    media_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> StoredResponse:
        return cls(**json.loads(text))


def fingerprint(**parts: Any) -> str:
    """A stable digest of a parsed request; multipart boundaries and key order don't matter."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(
        self, sessions: sessionmaker[Session], *, ttl: timedelta, lock_timeout: timedelta
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._lock_timeout = lock_timeout

    def begin(
        self, *, account_id: int, key: str, fingerprint: str, request_id: str
    ) -> StoredResponse | None:
        """Claim ``key`` for this request (None) or return the response to replay.

        Raises ``IdempotencyKeyInUse`` while another request holds the key and
        ``IdempotencyKeyReused`` when the key belongs to a different request.
        """
        now = datetime.now(UTC)
        try:
            with self._sessions.begin() as session:
                record = session.scalar(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key
                    )
                )
                if record is not None and _aware(record.expires_at) <= now:
                    session.delete(record)
                    session.flush()
                    record = None
                if record is None:
                    session.add(
                        IdempotencyRecord(
                            account_id=account_id,
                            key=key,
                            fingerprint=fingerprint,
                            status=IN_PROGRESS,
                            request_id=request_id,
                            locked_until=now + self._lock_timeout,
                            expires_at=now + self._ttl,
                        )
                    )
                    return None
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                if record.status == COMPLETED and record.response is not None:
                    return StoredResponse.from_json(record.response)
                if _aware(record.locked_until) > now:
                    raise IdempotencyKeyInUse(headers={"Retry-After": "1"})
                # The request that held the key died without finishing: this one takes over.
                record.request_id = request_id
                record.locked_until = now + self._lock_timeout
                return None
        except IntegrityError:
            # Another request inserted the same key between our read and our insert.
            raise IdempotencyKeyInUse(headers={"Retry-After": "1"}) from None

    def complete(
        self, *, account_id: int, key: str, request_id: str, response: StoredResponse
    ) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.account_id == account_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.request_id == request_id,
                )
                .values(status=COMPLETED, response=response.to_json())
            )

    def renew(self, *, account_id: int, key: str, request_id: str) -> bool:
        """Hold the key for another lock timeout while its request is alive, so that a retry
        takes it over only from a dead process; False once the request no longer holds it."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.account_id == account_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.request_id == request_id,
                    IdempotencyRecord.status == IN_PROGRESS,
                )
                .values(locked_until=datetime.now(UTC) + self._lock_timeout)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def abandon(self, *, account_id: int, key: str, request_id: str) -> None:
        """Free the key after a failure so that a retry runs again (also when the failure came
        after the response was recorded but before its charge was final)."""
        with self._sessions.begin() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.account_id == account_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.request_id == request_id,
                )
            )

    def sweep(self, *, now: datetime | None = None) -> int:
        with self._sessions.begin() as session:
            result = session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.expires_at < (now or datetime.now(UTC))
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Retouch stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
