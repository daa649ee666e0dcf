"""Fuzzing request parsing on the image endpoints: random JSON, multipart and Content-Types over
real HTTP. Whatever arrives, the answer is below 500, every 4xx is the envelope with a documented
code, and a failed request charges nothing.

Image URLs are never fetched (generated hosts are arbitrary, and this machine must send no
traffic beyond loopback): the fetcher is replaced, and any connection the server still tried
would be refused by the ``connections`` guard. Image parts are junk or under the 64 px minimum,
so no example runs a model. Bounded and derandomized; bench/fuzz.py runs the same properties
for longer.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from retouch.api.inputs import validate
from retouch.app_state import Services
from retouch.billing import ledger
from retouch.billing.idempotency import fingerprint
from retouch.errors import InvalidParameter, MissingParameter
from tests.utils import fuzzing
from tests.utils.factories import TestAccount, make_account

pytestmark = [
    # Generated URLs are never fetched, webhooks never sent.
    pytest.mark.usefixtures("offline"),
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings(*fuzzing.ignored_warning_specs()),
]

CREDITS = 1000

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def account(services: Services) -> TestAccount:
    return make_account(services, credits=CREDITS, rate_limit=100_000)


def _balance(services: Services, account: TestAccount) -> int:
    with services.sessions() as session:
        value = ledger.balance(session, account_id=account.id)
        assert value == ledger.ledger_sum(session, account_id=account.id)
        return value


def _check(
    request: fuzzing.FuzzRequest, client: httpx.Client, services: Services, account: TestAccount
) -> None:
    before = _balance(services, account)
    response = request.send(client, account.key)
    fuzzing.check_response(response)
    charged = int(response.headers["X-Credits-Charged"]) if response.is_success else 0
    assert _balance(services, account) == before - charged, (response.status_code, response.text)


@settings(FUZZ, max_examples=80)
@given(request=fuzzing.json_requests())
def test_json_bodies_get_a_4xx_envelope_and_charge_nothing(
    request: fuzzing.FuzzRequest, client: httpx.Client, services: Services, account: TestAccount
) -> None:
    _check(request, client, services, account)


# The body ends inside a file part: Starlette leaves that part's file to the garbage collector.
TRUNCATED_FILE_PART = fuzzing.FuzzRequest(
    path="/v1/remove-background",
    content=b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG',
    headers={"Content-Type": "multipart/form-data; boundary=b"},
)


@settings(FUZZ, max_examples=80)
@given(request=fuzzing.multipart_requests())
@example(request=TRUNCATED_FILE_PART)
def test_multipart_bodies_get_a_4xx_envelope_and_charge_nothing(
    request: fuzzing.FuzzRequest, client: httpx.Client, services: Services, account: TestAccount
) -> None:
    _check(request, client, services, account)


@settings(FUZZ, max_examples=40)
@given(request=fuzzing.odd_content_type_requests())
def test_other_content_types_get_a_4xx_envelope_and_charge_nothing(
    request: fuzzing.FuzzRequest, client: httpx.Client, services: Services, account: TestAccount
) -> None:
    _check(request, client, services, account)


@settings(FUZZ, max_examples=300)
@given(model=st.sampled_from(fuzzing.REQUEST_MODELS), fields=fuzzing.json_fields())
def test_validation_raises_only_the_spec_errors(
    model: type[BaseModel], fields: dict[str, Any]
) -> None:
    """Below HTTP, so many more examples fit: what the routes do with a body once it is a dict.
    A model that validates must also fingerprint (idempotency) without error."""
    try:
        params = validate(model, fields)
    except (InvalidParameter, MissingParameter) as exc:
        assert exc.status == 400 and exc.message
        return
    fingerprint(endpoint="fuzz", params=params.model_dump(mode="json"), images={})


# JSON that Python's parser cannot take: past the recursion limit, or an integer longer than
# int()'s 4300-digit cap. Each used to escape as a 500.
DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000
HUGE_INT = "9" * 5_000


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        DEEP_OBJECT,
        f'{{"image_url": "https://example.com/a.png", "shadow": {DEEP}}}',
        f'{{"image_url": "https://example.com/a.png", "crop": {HUGE_INT}}}',
        f'{{"image_url": "https://example.com/a.png", "unknown": [{HUGE_INT}]}}',
        '{"image_url": "https://example.com/a.png", "x": ' + "[" * 40 + "]" * 40 + "}",
    ],
    ids=["deep-array", "deep-object", "deep-field", "huge-int", "huge-int-unknown", "depth-41"],
)
@pytest.mark.parametrize("path", ["/v1/remove-background", "/v1/try-on"])
def test_pathological_json_bodies_are_invalid_request_body(
    client: httpx.Client, services: Services, account: TestAccount, body: str, path: str
) -> None:
    before = _balance(services, account)
    response = client.post(
        path,
        content=body,
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "invalid_request_body"
    assert _balance(services, account) == before


@pytest.mark.parametrize(
    "value",
    [
        '{"enabled": true, "light_source": ' + DEEP_OBJECT + "}",
        '{"enabled": true, "opacity": ' + HUGE_INT + "}",
    ],
    ids=["deep", "huge-int"],
)
def test_pathological_json_in_a_multipart_field_is_invalid_parameter(
    client: httpx.Client, services: Services, account: TestAccount, value: str
) -> None:
    before = _balance(services, account)
    response = client.post(
        "/v1/remove-background",
        headers=account.headers,
        files={"image": ("a.png", b"\x89PNG\r\n\x1a\n"), "shadow": (None, value)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "invalid_parameter"
    assert "shadow" in response.json()["error"]
    assert _balance(services, account) == before


def test_ordinary_nesting_and_long_numbers_still_parse(
    client: httpx.Client, services: Services, account: TestAccount
) -> None:
    """The bound leaves room for every real body: a shadow is three levels deep, a float may
    carry more digits than it can hold, and brackets inside a string are no nesting."""
    body = (
        '{"image_url": "https://example.com/a.png?q=[[[[{{{{[[[[{{{{[[[[{{{{[[[[{{{{[[[[{{{{", '
        '"shadow": '
        '{"enabled": true, "opacity": 0.50000000000000000000000001, '
        '"light_source": {"position": {"x": 0, "y": -0.6, "z": 0.7}}}}'
    )
    response = client.post(
        "/v1/remove-background",
        content=body,
        headers={**account.headers, "Content-Type": "application/json"},
    )
    # Parsed and validated, then stopped at the fetch (fetching is off in these tests).
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "invalid_parameter"
    assert "could not be fetched" in response.json()["error"]
