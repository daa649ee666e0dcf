"""Schemathesis' stateful mode over the whole document, following the links a client follows for
a try-on job: submit (202 ``job_id``), then poll and cancel that job. Whatever the sequence, no
5xx, and every 4xx is the envelope with a documented code.

The app's document declares no links, so this test adds them (``$response.body#/job_id``). A job
needs two decodable images, which generated data never is: the fetcher answers the try-on URL
fields from memory with small valid images (and refuses every other URL). Nothing leaves
loopback: no URL is fetched and no webhook delivered. Bounded: a few short scenarios.

The server runs no jobs (an API node, ``run_jobs=false``), so every job stays pending. Hypothesis
replays choice sequences and refuses a run in which the same choices met a different bundle
(``FlakyStrategyDefinition``): a job that sometimes finished within the submission's wait
(200, no job id) and sometimes not (202) made the try-on bundle's size a matter of timing.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.core.transport import Response

from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.config import Settings
from retouch.errors import InvalidParameter
from tests.utils import fuzzing
from tests.utils.factories import make_account
from tests.utils.images import encode
from tests.utils.people import small_portrait
from tests.utils.server import LiveServer

pytestmark = pytest.mark.timeout(180)

PERSON = encode(small_portrait())  # a person: the pose model runs at submission
GARMENT = np.zeros((80, 80, 4), np.uint8)
GARMENT[10:70, 10:70] = (200, 20, 20, 255)  # has transparency: no extraction, no model run
FETCHABLE = {"person_image_url": PERSON, "garment_image_url": encode(GARMENT)}
# The endpoints table documents this one for cancelling a job that has ended.
CODES = fuzzing.DOCUMENTED_ERROR_CODES | {"job_finished"}


def _with_job_links(document: dict[str, Any]) -> dict[str, Any]:
    linked = copy.deepcopy(document)
    job = {"jobId": "$response.body#/job_id"}
    follow = {
        "GetJob": {"operationId": "try-on-job-status", "parameters": job},
        "CancelJob": {"operationId": "try-on-job-cancel", "parameters": job},
    }
    paths = linked["paths"]
    paths["/v1/try-on"]["post"]["responses"]["202"]["links"] = follow
    paths["/v1/try-on/job/{jobId}"]["get"]["responses"]["200"]["links"] = {
        "CancelJob": follow["CancelJob"]
    }
    # Optional in the API (a file part may stand in), but a scenario without both URLs ends at its
    # first step; test_schema_fuzz covers leaving them out. Every URL is parsed before the first
    # is fetched, so a scenario also needs URLs that parse (test_schema_fuzz sends the others).
    request = linked["components"]["schemas"]["TryOnRequest"]
    request["required"] = list(FETCHABLE)
    for field in FETCHABLE:
        request["properties"][field] = {"type": "string", "enum": [f"https://cdn.example/{field}"]}
    return linked


schema = schemathesis.openapi.from_dict(_with_job_links(create_app(Settings()).openapi()))


@pytest.fixture(autouse=True)
def try_on_images_from_memory(monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    """Offline, except that the try-on URL fields get real images, so jobs are made."""

    async def from_memory(url: str, *, field: str, **_kwargs: object) -> bytes:
        if field in FETCHABLE:
            return FETCHABLE[field]
        raise InvalidParameter(f"{field} could not be fetched: {url!r} (fetching is off in tests)")

    monkeypatch.setattr("retouch.api.inputs.fetch_url", from_memory)


@pytest.fixture
def live(settings: Settings, engines: Engines) -> Iterator[tuple[LiveServer, str]]:
    # A short wait, so that a waiting submission hands over its job id (202) instead of blocking.
    settings = settings.model_copy(update={"job_wait_seconds": 0.001, "run_jobs": False})
    services = Services.create(settings, engines=engines)
    try:
        key = make_account(services, credits=100_000, rate_limit=100_000).key
        with LiveServer.start(create_app(settings, services)) as server:
            yield server, key
    finally:
        services.close()


def test_following_job_links_never_makes_a_server_error(live: tuple[LiveServer, str]) -> None:
    server, key = live
    seen: collections.Counter[tuple[str, str, int]] = collections.Counter()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            # Over any generated key: a scenario is about the job it created. Bad keys are
            # test_schema_fuzz's business.
            case.headers = {**(case.headers or {}), "X-API-KEY": key}

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": server.url, "timeout": 60}

        def validate_response(
            self, response: Response, case: schemathesis.Case, *_args: Any, **_kwargs: Any
        ) -> None:
            seen[case.method, case.path, response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error", "error_code"}, body
                assert body["error_code"] in CODES, body

    Workflow.run(
        settings=hypothesis_settings(
            max_examples=20,
            stateful_step_count=4,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links were followed to real jobs, not only to generated ids.
    assert seen["POST", "/v1/try-on", 202], seen
    assert seen["GET", "/v1/try-on/job/{jobId}", 200], seen
