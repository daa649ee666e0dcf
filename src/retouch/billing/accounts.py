"""Accounts: a name, a credit balance (kept by the ledger) and a rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retouch.billing import keys, ledger
from retouch.db.models import Account
from retouch.errors import Conflict, NotFound

DEFAULT_ACCOUNT = "default"


def create_account(
    session: Session, *, name: str, credits: int = 0, rate_limit_per_second: int | None = None
) -> Account:
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise Conflict(f"An account named {name!r} already exists")
    account = Account(
        name=name,
        balance=0,
        rate_limit_per_second=rate_limit_per_second,
        created_at=datetime.now(UTC),
    )
    session.add(account)
    session.flush()
    if credits:
        ledger.grant(session, account_id=account.id, amount=credits)
        session.refresh(account)
    return account


def get_account(session: Session, *, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise NotFound(f"No account named {name!r}")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.id)))


def set_rate_limit(session: Session, *, name: str, per_second: int | None) -> Account:
    account = get_account(session, name=name)
    account.rate_limit_per_second = per_second
    return account


@dataclass(frozen=True)
class Bootstrap:
    account: str
    credits: int
    key: keys.IssuedKey


def bootstrap_default_account(sessions: sessionmaker[Session], *, credits: int) -> Bootstrap | None:
    """On an empty database, create the ``default`` account and its first key.

    Returns None when any account exists already, including when another node starting at the
    same moment created it first.
    """
    try:
        with sessions.begin() as session:
            if session.scalar(select(Account.id).limit(1)) is not None:
                return None
            account = create_account(session, name=DEFAULT_ACCOUNT, credits=credits)
            issued = keys.create_key(session, account_id=account.id)
            return Bootstrap(account=account.name, credits=credits, key=issued)
    except IntegrityError:
        return None
