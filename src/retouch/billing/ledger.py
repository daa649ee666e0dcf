"""The credit ledger: grants, and reserve -> commit/release around every paid operation.

Invariant: ``accounts.balance`` equals the sum of the account's ledger rows. Every balance change
is one conditional ``UPDATE`` (the database, not Python, decides whether the balance suffices) plus
its ledger row, in one transaction. A reservation charges up front and is either committed (the
charge stands) or released (a refund row cancels it), exactly once, keyed by request id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retouch.db.models import Account, LedgerEntry, Reservation
from retouch.errors import InsufficientCredits, RetouchError


class LedgerError(RetouchError):
    """A ledger call that makes no sense for the reservation's state (a bug, not a client error)."""


class ReservationStatus(enum.StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclass(frozen=True)
class Hold:
    account_id: int
    request_id: str
    endpoint: str
    amount: int
    status: ReservationStatus


def _now() -> datetime:
    return datetime.now(UTC)


def _adjust_balance(
    session: Session,
    *,
    account_id: int,
    amount: int,
    kind: str,
    request_id: str | None,
    endpoint: str | None,
) -> bool:
    """Add ``amount`` (may be negative) unless the balance would go below zero."""
    condition = [Account.id == account_id]
    if amount < 0:
        condition.append(Account.balance >= -amount)
    result = session.execute(
        update(Account).where(*condition).values(balance=Account.balance + amount)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if amount:
        session.add(
            LedgerEntry(
                account_id=account_id,
                kind=kind,
                amount=amount,
                request_id=request_id,
                endpoint=endpoint,
                created_at=_now(),
            )
        )
    return True


def grant(session: Session, *, account_id: int, amount: int, request_id: str | None = None) -> None:
    """Add credits (or, with a negative amount, take back unspent ones)."""
    if not _adjust_balance(
        session,
        account_id=account_id,
        amount=amount,
        kind="grant",
        request_id=request_id,
        endpoint=None,
    ):
        raise InsufficientCredits("The account does not hold that many credits")


def balance(session: Session, *, account_id: int) -> int:
    value = session.scalar(select(Account.balance).where(Account.id == account_id))
    if value is None:
        raise LedgerError(f"No account {account_id}")
    return value


def ledger_sum(session: Session, *, account_id: int) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id
            )
        )
        or 0
    )


def _hold(row: Reservation) -> Hold:
    return Hold(
        account_id=row.account_id,
        request_id=row.request_id,
        endpoint=row.endpoint,
        amount=row.amount,
        status=ReservationStatus(row.status),
    )


def _find(session: Session, account_id: int, request_id: str) -> Reservation | None:
    return session.scalar(
        select(Reservation).where(
            Reservation.account_id == account_id, Reservation.request_id == request_id
        )
    )


class Ledger:
    """Reservation API over a session factory: each call is its own short transaction.

    Callable from an HTTP handler's worker thread or from a job worker alike.
    """

    def __init__(self, sessions: sessionmaker[Session], *, reservation_ttl: timedelta) -> None:
        self._sessions = sessions
        self._ttl = reservation_ttl

    def reserve(
        self,
        *,
        account_id: int,
        request_id: str,
        endpoint: str,
        amount: int,
        ttl: timedelta | None = None,
    ) -> Hold:
        """Charge ``amount`` now; a second call with the same request id returns the first hold.

        After ``ttl`` (default: the ledger's) an unfinished hold counts as abandoned and is
        refunded. Raises ``InsufficientCredits`` when the balance is too low.
        """
        try:
            with self._sessions.begin() as session:
                existing = _find(session, account_id, request_id)
                if existing is not None:
                    return _hold(existing)
                if not _adjust_balance(
                    session,
                    account_id=account_id,
                    amount=-amount,
                    kind="charge",
                    request_id=request_id,
                    endpoint=endpoint,
                ):
                    raise InsufficientCredits(
                        f"This request costs {amount} credit{'s' if amount != 1 else ''} "
                        "and the account does not have enough"
                    )
                now = _now()
                row = Reservation(
                    account_id=account_id,
                    request_id=request_id,
                    endpoint=endpoint,
                    amount=amount,
                    status=ReservationStatus.RESERVED,
                    created_at=now,
                    expires_at=now + (ttl or self._ttl),
                )
                session.add(row)
                session.flush()
                return _hold(row)
        except IntegrityError:
            # A concurrent reserve with the same request id won; its transaction, not ours, stands.
            with self._sessions() as session:
                existing = _find(session, account_id, request_id)
                if existing is None:
                    raise
                return _hold(existing)

    def commit(self, *, account_id: int, request_id: str) -> Hold:
        """Make the charge final. Idempotent; refuses a reservation that was already refunded."""
        with self._sessions.begin() as session:
            session.execute(
                update(Reservation)
                .where(
                    Reservation.account_id == account_id,
                    Reservation.request_id == request_id,
                    Reservation.status == ReservationStatus.RESERVED,
                )
                .values(status=ReservationStatus.COMMITTED)
            )
            row = _find(session, account_id, request_id)
            if row is None:
                raise LedgerError(f"No reservation for request {request_id}")
            if row.status == ReservationStatus.RELEASED:
                raise LedgerError(f"Reservation for request {request_id} was already released")
            return _hold(row)

    def renew(self, *, account_id: int, request_id: str, ttl: timedelta | None = None) -> bool:
        """Push back the expiry of a hold whose request is still alive; False once it ended."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Reservation)
                .where(
                    Reservation.account_id == account_id,
                    Reservation.request_id == request_id,
                    Reservation.status == ReservationStatus.RESERVED,
                )
                .values(expires_at=_now() + (ttl or self._ttl))
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def balance(self, *, account_id: int) -> int:
        with self._sessions() as session:
            return balance(session, account_id=account_id)

    def release(self, *, account_id: int, request_id: str) -> Hold | None:
        """Refund a reservation that was not committed. Idempotent; None if there was none."""
        with self._sessions.begin() as session:
            return self.release_in(session, account_id=account_id, request_id=request_id)

    def release_in(self, session: Session, *, account_id: int, request_id: str) -> Hold | None:
        """``release`` inside the caller's transaction, so the refund commits (or not) with
        whatever else that transaction changes."""
        return self._release(session, account_id=account_id, request_id=request_id)[0]

    def _release(
        self, session: Session, *, account_id: int, request_id: str
    ) -> tuple[Hold | None, bool]:
        """The reservation after the call, and whether this call is the one that refunded it."""
        row = _find(session, account_id, request_id)
        if row is None:
            return None, False
        flipped = session.execute(
            update(Reservation)
            .where(Reservation.id == row.id, Reservation.status == ReservationStatus.RESERVED)
            .values(status=ReservationStatus.RELEASED)
        )
        refunded = flipped.rowcount == 1  # type: ignore[attr-defined]
        if refunded:
            _adjust_balance(
                session,
                account_id=account_id,
                amount=row.amount,
                kind="refund",
                request_id=request_id,
                endpoint=row.endpoint,
            )
        session.refresh(row)
        return _hold(row), refunded

    def release_expired(self, *, now: datetime | None = None) -> int:
        """Refund reservations whose process died before committing or releasing them."""
        moment = now or _now()
        with self._sessions() as session:
            stale = session.execute(
                select(Reservation.account_id, Reservation.request_id).where(
                    Reservation.status == ReservationStatus.RESERVED,
                    Reservation.expires_at < moment,
                )
            ).all()
        released = 0
        for account_id, request_id in stale:
            with self._sessions.begin() as session:
                released += self._release(session, account_id=account_id, request_id=request_id)[1]
        return released
