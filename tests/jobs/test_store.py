"""A failed job and its refund are one transaction: nobody sees one without the other.

Each test asks for ``database_url``, so it runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from retouch.app_state import Services
from retouch.billing import ledger as ledger_module
from retouch.jobs.store import JobStatus, JobStore
from tests.utils.factories import make_account


def _held_job(services: Services, job_id: str) -> tuple[JobStore, int]:
    account = make_account(services, credits=10)
    services.ledger.reserve(account_id=account.id, request_id=job_id, endpoint="try-on", amount=3)
    store = JobStore(services.sessions)
    store.create(job_id=job_id, account_id=account.id, kind="try-on", params={}, price=3)
    return store, account.id


def _balance(services: Services, account_id: int) -> int:
    with services.sessions() as session:
        return ledger_module.balance(session, account_id=account_id)


def test_a_job_fails_and_is_refunded_together(services: Services, database_url: str) -> None:
    store, account_id = _held_job(services, "job-1")
    assert _balance(services, account_id) == 7

    def refund(session: Session) -> None:
        services.ledger.release_in(session, account_id=account_id, request_id="job-1")

    assert store.fail("job-1", code="job_cancelled", message="cancelled", then=refund)
    job = store.get("job-1")
    assert job is not None and job.status == JobStatus.FAILED
    assert _balance(services, account_id) == 10
    # A second failure neither moves the job nor runs the refund again.
    assert not store.fail("job-1", code="job_cancelled", message="again", then=refund)
    assert _balance(services, account_id) == 10


def test_a_refund_that_fails_leaves_the_job_unfailed(services: Services, database_url: str) -> None:
    store, account_id = _held_job(services, "job-2")

    def broken(session: Session) -> None:
        services.ledger.release_in(session, account_id=account_id, request_id="job-2")
        raise RuntimeError("the database went away mid-transaction")

    with pytest.raises(RuntimeError):
        store.fail("job-2", code="job_cancelled", message="cancelled", then=broken)
    job = store.get("job-2")
    assert job is not None and job.status == JobStatus.PENDING
    assert _balance(services, account_id) == 7
