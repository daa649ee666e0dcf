"""Application-level behaviour: the sweeper and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import yaml

from retouch.app_state import Services
from retouch.maintenance import sweep_once
from tests.utils.factories import make_account
from tests.utils.images import composite, encode

# A copy of the seed OpenAPI document Retouch must match (shared/spec/seed-get-credits.yaml).
SEED = Path(__file__).with_name("data") / "seed-get-credits.yaml"


def test_sweeper_deletes_expired_results_and_refunds_abandoned_holds(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services, credits=5)
    response = client.post(
        "/v1/remove-background",
        headers=account.headers,
        files={"image": ("a.png", encode(composite("flat")[0]))},
    )
    url = response.json()["result_url"]
    services.ledger.reserve(account_id=account.id, request_id="crashed", endpoint="t", amount=2)
    results = list(services.settings.results_dir.iterdir())
    assert len(results) == 1

    real_clock = services.clock
    services.clock = lambda: real_clock() + timedelta(hours=2)
    sweep_once(services)
    assert list(services.settings.results_dir.iterdir()) == []
    services.clock = real_clock
    assert httpx.get(url).status_code == 404
    assert client.get("/v1/credits", headers=account.headers).json() == {"credits_remaining": "4"}


def test_openapi_matches_the_seed_for_credits(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    seed = yaml.safe_load(SEED.read_text())

    ours = document["paths"]["/v1/credits"]["get"]
    theirs = seed["paths"]["/v1/credits"]["get"]
    assert ours["operationId"] == theirs["operationId"]
    assert set(ours["responses"]) == set(theirs["responses"])
    assert ours["security"] == theirs["security"]
    schema = document["components"]["schemas"]["CreditsJSONResponse"]
    assert schema["properties"]["credits_remaining"]["type"] == "string"
    assert set(schema["properties"]) == set(
        seed["components"]["schemas"]["CreditsJSONResponse"]["properties"]
    )
    scheme = document["components"]["securitySchemes"]["ApiKeyAuth"]
    seed_scheme = seed["components"]["securitySchemes"]["ApiKeyAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        seed_scheme["type"],
        seed_scheme["in"],
        seed_scheme["name"],
    )
    for status in ("401", "429"):
        example = ours["responses"][status]["content"]["application/json"]["example"]
        seed_codes = theirs["responses"][status]["$ref"].rsplit("/", 1)[1]
        enum = seed["components"]["responses"][seed_codes]["content"]["application/json"]["schema"][
            "properties"
        ]["error_code"]["enum"]
        assert example["error_code"] in enum
    # No framework 422s: invalid input is Pixelcut's 400 envelope.
    assert "HTTPValidationError" not in document["components"]["schemas"]
