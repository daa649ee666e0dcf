"""GET /v1/credits over real HTTP: the seed's shape, auth, ledger tracking, rate limit."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from retouch.app_state import Services
from retouch.billing import keys, ledger
from retouch.db.models import ApiKey
from tests.utils.factories import make_account

UNAUTHORISED = {"error": "API Token not found", "error_code": "invalid_auth_token"}


@pytest.mark.usefixtures("database_url")
def test_returns_the_seed_shape_and_tracks_the_ledger(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services, credits=42)

    response = client.get("/v1/credits", headers=account.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"credits_remaining": "42"}

    services.ledger.reserve(account_id=account.id, request_id="r1", endpoint="upscale", amount=3)
    services.ledger.commit(account_id=account.id, request_id="r1")
    services.ledger.reserve(account_id=account.id, request_id="r2", endpoint="upscale", amount=5)
    services.ledger.release(account_id=account.id, request_id="r2")
    with services.sessions.begin() as session:
        ledger.grant(session, account_id=account.id, amount=10)
        expected = ledger.ledger_sum(session, account_id=account.id)

    response = client.get("/v1/credits", headers=account.headers)
    assert response.json() == {"credits_remaining": str(expected)}
    assert expected == 49


@pytest.mark.parametrize("header", ["X-API-KEY", "x-api-key", "X-Api-Key"])
def test_header_name_is_case_insensitive(
    client: httpx.Client, services: Services, header: str
) -> None:
    account = make_account(services, credits=1)
    assert client.get("/v1/credits", headers={header: account.key}).status_code == 200


@pytest.mark.usefixtures("database_url")
def test_missing_unknown_and_revoked_keys_get_401(client: httpx.Client, services: Services) -> None:
    account = make_account(services)
    for headers in ({}, {"X-API-KEY": ""}, {"X-API-KEY": account.key + "x"}, {"X-API-KEY": "sk_"}):
        response = client.get("/v1/credits", headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORISED

    with services.sessions.begin() as session:
        assert keys.revoke_key(session, key_id=account.key_id)
    response = client.get("/v1/credits", headers=account.headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORISED


def test_keys_are_stored_only_as_hashes(services: Services) -> None:
    account = make_account(services)
    assert account.key.startswith("sk_") and len(account.key) >= 3 + 43
    with services.sessions() as session:
        stored = session.execute(sa.select(ApiKey)).scalar_one()
        columns = [str(getattr(stored, c.key)) for c in ApiKey.__table__.columns]
    assert all(account.key not in value for value in columns)
    assert stored.key_hash == keys.hash_key(account.key)


def test_sixth_request_in_a_second_is_refused_with_headers(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services, rate_limit=None)
    other = make_account(services, "other", rate_limit=None)

    responses = [client.get("/v1/credits", headers=account.headers) for _ in range(6)]

    assert [r.status_code for r in responses] == [200] * 5 + [429]
    for i, response in enumerate(responses[:5]):
        assert response.headers["RateLimit-Policy"] == '"default";q=5;w=1'
        assert response.headers["RateLimit"] == f'"default";r={4 - i};t=1'
    refused = responses[5]
    assert refused.json() == {"error": "Too many requests", "error_code": "rate_limit_exceeded"}
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit"] == '"default";r=0;t=1'
    # The limit is per account.
    assert client.get("/v1/credits", headers=other.headers).status_code == 200


def test_rate_limit_is_configurable_per_account(client: httpx.Client, services: Services) -> None:
    account = make_account(services, rate_limit=2)
    statuses = [client.get("/v1/credits", headers=account.headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
