"""API keys: generated once, stored as a hash, looked up by that hash.

Keys carry 256 random bits, so a single SHA-256 is enough to make a leaked table useless (there
is nothing to brute-force) and lets the lookup go through a unique index. The final comparison is
constant-time anyway, so response timing says nothing about how much of a guess matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from retouch.db.models import Account, ApiKey

KEY_PREFIX = "sk_"
_RANDOM_BYTES = 32
_SHOWN_PREFIX_LEN = 10


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``secret`` exists only here and is never stored."""

    id: int
    account_id: int
    secret: str
    prefix: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, account_id: int) -> IssuedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    row = ApiKey(
        account_id=account_id,
        key_hash=hash_key(secret),
        prefix=secret[:_SHOWN_PREFIX_LEN],
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return IssuedKey(id=row.id, account_id=account_id, secret=secret, prefix=row.prefix)


def authenticate(session: Session, *, secret: str | None) -> Account | None:
    """The account owning an active key ``secret``, or None for a missing/unknown/revoked key."""
    if not secret:
        return None
    digest = hash_key(secret)
    row = session.execute(
        select(ApiKey, Account)
        .join(Account, Account.id == ApiKey.account_id)
        .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.ApiKey.key_hash, digest):
        return None
    account: Account = row.Account
    return account


def list_keys(session: Session, *, account_id: int) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.id))
    )


def revoke_key(session: Session, *, key_id: int) -> bool:
    """Revoke a key; False when no active key has that id."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    # An UPDATE returns a CursorResult, which has rowcount; execute() is typed as Result.
    updated: int = result.rowcount  # type: ignore[attr-defined]
    return updated == 1
