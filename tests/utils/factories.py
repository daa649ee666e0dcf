"""Factory helpers: accounts with keys, straight through the billing layer."""

from __future__ import annotations

from dataclasses import dataclass

from retouch.app_state import Services
from retouch.billing import accounts, keys


@dataclass(frozen=True)
class TestAccount:
    __test__ = False  # not a test class, despite the name

    id: int
    name: str
    key: str
    key_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.key}


def make_account(
    services: Services, name: str = "acme", *, credits: int = 10, rate_limit: int | None = 1000
) -> TestAccount:
    """An account and its key. The rate limit is high so that tests about other things never
    trip it; ``rate_limit=None`` gives the global default."""
    with services.sessions.begin() as session:
        account = accounts.create_account(
            session, name=name, credits=credits, rate_limit_per_second=rate_limit
        )
        issued = keys.create_key(session, account_id=account.id)
    return TestAccount(id=account.id, name=name, key=issued.secret, key_id=issued.id)
