"""The ledger keeps balance == sum(ledger) and charges each request once, on every backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from retouch.app_state import Services
from retouch.billing import ledger
from retouch.billing.ledger import LedgerError, ReservationStatus
from retouch.db.models import LedgerEntry
from retouch.errors import InsufficientCredits
from tests.utils.factories import make_account

pytestmark = pytest.mark.usefixtures("database_url")


def balances(services: Services, account_id: int) -> tuple[int, int]:
    with services.sessions() as session:
        return (
            ledger.balance(session, account_id=account_id),
            ledger.ledger_sum(session, account_id=account_id),
        )


def test_fifty_concurrent_reserves_on_ten_credits_exactly_ten_succeed(services: Services) -> None:
    account = make_account(services, credits=10)

    def attempt(i: int) -> bool:
        try:
            services.ledger.reserve(
                account_id=account.id, request_id=f"req-{i}", endpoint="test", amount=1
            )
        except InsufficientCredits:
            return False
        return True

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(50)))

    assert outcomes.count(True) == 10
    assert balances(services, account.id) == (0, 0)
    with services.sessions() as session:
        charges = session.scalar(
            sa.select(sa.func.count()).where(
                LedgerEntry.account_id == account.id, LedgerEntry.kind == "charge"
            )
        )
    assert charges == 10


def test_concurrent_reserves_with_one_request_id_charge_once(services: Services) -> None:
    account = make_account(services, credits=10)

    def attempt(_: int) -> ledger.Hold:
        return services.ledger.reserve(
            account_id=account.id, request_id="same", endpoint="test", amount=3
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        holds = list(pool.map(attempt, range(20)))

    assert {h.amount for h in holds} == {3}
    assert balances(services, account.id) == (7, 7)


def test_commit_keeps_the_charge_and_release_refunds_it(services: Services) -> None:
    account = make_account(services, credits=10)
    services.ledger.reserve(account_id=account.id, request_id="a", endpoint="upscale", amount=4)
    services.ledger.reserve(account_id=account.id, request_id="b", endpoint="upscale", amount=2)
    assert balances(services, account.id) == (4, 4)

    assert services.ledger.commit(account_id=account.id, request_id="a").status == "committed"
    released = services.ledger.release(account_id=account.id, request_id="b")
    assert released is not None and released.status == ReservationStatus.RELEASED
    assert balances(services, account.id) == (6, 6)

    # Repeats change nothing: a commit stays committed, a release refunds once.
    services.ledger.commit(account_id=account.id, request_id="a")
    services.ledger.release(account_id=account.id, request_id="a")
    services.ledger.release(account_id=account.id, request_id="b")
    assert balances(services, account.id) == (6, 6)

    with pytest.raises(LedgerError):
        services.ledger.commit(account_id=account.id, request_id="b")
    assert services.ledger.release(account_id=account.id, request_id="unknown") is None


def test_insufficient_credits_charges_nothing(services: Services) -> None:
    account = make_account(services, credits=2)
    with pytest.raises(InsufficientCredits) as caught:
        services.ledger.reserve(account_id=account.id, request_id="x", endpoint="test", amount=3)
    assert caught.value.status == 403
    assert caught.value.error_code == "insufficient_api_credits"
    assert balances(services, account.id) == (2, 2)


def test_expired_reservations_are_refunded(services: Services) -> None:
    account = make_account(services, credits=5)
    services.ledger.reserve(account_id=account.id, request_id="crashed", endpoint="t", amount=5)
    assert services.ledger.release_expired() == 0
    later = datetime.now(UTC) + timedelta(seconds=services.settings.reservation_ttl_seconds + 1)
    assert services.ledger.release_expired(now=later) == 1
    assert balances(services, account.id) == (5, 5)
    assert services.ledger.release_expired(now=later) == 0


def test_renewing_keeps_a_live_reservation_from_the_sweeper(services: Services) -> None:
    account = make_account(services, credits=5)
    services.ledger.reserve(
        account_id=account.id, request_id="alive", endpoint="t", amount=5, ttl=timedelta(seconds=1)
    )
    past_first_expiry = datetime.now(UTC) + timedelta(seconds=2)
    assert services.ledger.renew(account_id=account.id, request_id="alive")
    assert services.ledger.release_expired(now=past_first_expiry) == 0
    services.ledger.commit(account_id=account.id, request_id="alive")
    # Only a held reservation is renewed; a committed (or refunded) one stays as it ended.
    assert not services.ledger.renew(account_id=account.id, request_id="alive")
    assert balances(services, account.id) == (0, 0)


def test_grants_and_clawbacks_are_ledger_rows(services: Services) -> None:
    account = make_account(services, credits=0)
    with services.sessions.begin() as session:
        ledger.grant(session, account_id=account.id, amount=7)
        ledger.grant(session, account_id=account.id, amount=-2)
    with services.sessions.begin() as session, pytest.raises(InsufficientCredits):
        ledger.grant(session, account_id=account.id, amount=-6)
    assert balances(services, account.id) == (5, 5)
