"""Schemathesis over the app's own OpenAPI document: whatever the schema allows, no 5xx.

Examples are bounded so CI stays fast. Image and webhook URLs are never fetched here: generated
hostnames are arbitrary, and this machine must send no traffic beyond loopback.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from retouch.app import create_app
from retouch.app_state import Services
from retouch.config import Settings
from tests.utils.factories import make_account
from tests.utils.server import LiveServer


@pytest.fixture
def api_key(services: Services) -> str:
    return make_account(services, credits=100_000, rate_limit=100_000).key


pytestmark = pytest.mark.usefixtures("offline")


# The document needs no running app: it is what any app built from the code serves.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_no_input_makes_a_server_error(
    case: schemathesis.Case, api_key: str, server: LiveServer
) -> None:
    response = case.call(base_url=server.url, headers={"X-API-KEY": api_key}, timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    # A HEAD answer has no body by definition: its error is the status alone.
    if response.status_code >= 400 and case.method != "HEAD":
        body = response.json()
        assert set(body) == {"error", "error_code"}, body
