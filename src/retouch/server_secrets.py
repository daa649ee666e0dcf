"""The keys a deployment signs with, loaded in one place for every process that needs them.

Two keys: one signs result URLs, one is the master from which each account's webhook key is
derived. An operator may set either (``RETOUCH_RESULT_SECRET``, ``RETOUCH_WEBHOOK_SECRET``), and a
setting always wins. Otherwise the key is generated once and kept in the database, so every node
and worker on that database signs and verifies with the same one: a key kept per node would make
one node answer 404 for the result URLs another minted. The first process to need a key creates
it; a process racing it loses the insert and reads the winner's.

Deployments from before keys moved into the database kept them in files in the data dir
(``secret.key``, ``webhook.key``); when the database has no key yet, such a file's key is adopted,
so URLs and webhook keys issued before an upgrade stay valid.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from retouch.config import Settings
from retouch.db.models import ServerSecret

logger = logging.getLogger(__name__)

KEY_BYTES = 32
RESULT_URLS = "result_urls"
WEBHOOKS = "webhooks"


@dataclass(frozen=True)
class ServerSecrets:
    result_urls: bytes
    webhooks: bytes


class ServerKeys:
    """One process's keys, loaded once: when it starts or, if the database is down then, at the
    first use after it returns. A node may start during a database outage (``/readyz`` reports
    it); until the keys are loaded, using them raises the database's OperationalError, which
    requests answer as 503 ``service_unavailable``."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._loaded: ServerSecrets | None = None
        try:
            self.get()
        except OperationalError as exc:
            logger.warning("database unavailable at start (%s); keys load at first use", exc.orig)

    def get(self) -> ServerSecrets:
        # No lock: racing loads agree, the database sees to that.
        if self._loaded is None:
            with self._sessions.begin() as session:
                self._loaded = load_server_secrets(self._settings, session)
        return self._loaded


def load_server_secrets(settings: Settings, session: Session) -> ServerSecrets:
    """Both keys: from settings, else from the database, created there if no process has yet.
    Runs in the caller's transaction; the caller commits."""
    return ServerSecrets(
        result_urls=_configured(settings.result_secret)
        or shared_secret(session, RESULT_URLS, legacy_file=settings.secret_file),
        webhooks=_configured(settings.webhook_secret)
        or shared_secret(session, WEBHOOKS, legacy_file=settings.webhook_secret_file),
    )


def shared_secret(session: Session, name: str, *, legacy_file: Path | None = None) -> bytes:
    """The key ``name`` in the database, created (or adopted from ``legacy_file``) if absent."""
    found = session.get(ServerSecret, name)
    if found is not None:
        return found.value
    if legacy_file is not None and legacy_file.is_file():
        value, origin = legacy_file.read_bytes(), f"adopted from {legacy_file}"
    else:
        value, origin = secrets.token_bytes(KEY_BYTES), "generated"
    try:
        # A savepoint, so losing the race leaves the caller's transaction usable. On PostgreSQL
        # the loser's insert waits for the winner's commit, then fails on the primary key.
        with session.begin_nested():
            session.add(ServerSecret(name=name, value=value, created_at=datetime.now(UTC)))
    except IntegrityError:
        return session.get_one(ServerSecret, name).value
    logger.info("the %s key was %s and stored in the database", name, origin)
    return value


def _configured(setting: SecretStr | None) -> bytes | None:
    return setting.get_secret_value().encode() if setting else None
