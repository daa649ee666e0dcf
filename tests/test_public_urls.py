"""Which host and scheme a ``result_url`` names, over real HTTP: only hosts this server serves
(RETOUCH_ALLOWED_HOSTS), a scheme from X-Forwarded-Proto only when a configured proxy
(RETOUCH_FORWARDED_ALLOW_IPS) sent it, and RETOUCH_PUBLIC_BASE_URL above both."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from retouch.app_state import Services
from tests.utils.calls import assert_envelope
from tests.utils.factories import TestAccount, make_account
from tests.utils.images import composite, encode
from tests.utils.server import LiveServer

IMAGE = encode(composite("flat")[0][::2, ::2].copy())


def remove_background(client: httpx.Client, account: TestAccount, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/remove-background",
        headers={**account.headers, **headers},
        files={"image": ("a.png", IMAGE, "image/png")},
    )


def base_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["result_url"])
    assert url.path.startswith("/v1/results/")
    return f"{url.scheme}://{url.netloc}"


def credits_of(client: httpx.Client, account: TestAccount) -> str:
    return client.get("/v1/credits", headers=account.headers).json()["credits_remaining"]


def test_by_default_urls_name_the_address_used_and_no_client_chooses_another(
    client: httpx.Client, server: LiveServer, services: Services
) -> None:
    account = make_account(services)
    port = urlsplit(server.url).port
    assert base_of(remove_background(client, account)) == server.url
    assert base_of(remove_background(client, account, Host=f"localhost:{port}")) == (
        f"http://localhost:{port}"
    )
    # Loopback is no proxy until configured: its forwarded headers change nothing.
    forwarded = remove_background(
        client,
        account,
        **{
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert base_of(forwarded) == server.url
    spent = credits_of(client, account)

    for host in (
        "evil.example:1",
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost@evil.example",
        "localhost/evil.example",
        "localhost:80/x",
        "[::1]evil",
        "",
    ):
        refused = remove_background(client, account, Host=host)
        assert_envelope(refused, 400, "invalid_parameter")
        assert "result_url" not in refused.text
    # Refused before any work: nothing charged.
    assert credits_of(client, account) == spent
    # Probes address nodes by IP or by whatever name a load balancer uses.
    assert client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    assert client.get("/readyz", headers={"Host": "node-7.internal"}).status_code == 200


@pytest.mark.settings(
    allowed_hosts=["images.example.com", "*.cdn.example.com"],
    forwarded_allow_ips=["127.0.0.0/8"],
)
def test_behind_a_configured_proxy_urls_follow_its_headers_for_allowed_hosts(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    assert base_of(remove_background(client, account, Host="images.example.com", **https)) == (
        "https://images.example.com"
    )
    # Host names match whatever their case.
    wildcard = remove_background(client, account, Host="EU.cdn.example.com:8443")
    assert base_of(wildcard).lower() == "http://eu.cdn.example.com:8443"
    # The list replaces the defaults, loopback names included; a wildcard is no apex.
    for host in ("127.0.0.1", "localhost", "cdn.example.com", "example.com", "evil.example"):
        assert_envelope(
            remove_background(client, account, Host=host, **https), 400, "invalid_parameter"
        )
    # Forwarded values outside http/https are ignored, not copied.
    odd = remove_background(
        client, account, Host="images.example.com", **{"X-Forwarded-Proto": "javascript"}
    )
    assert base_of(odd) == "http://images.example.com"


@pytest.mark.settings(forwarded_allow_ips=["10.0.0.0/8"])
def test_forwarded_headers_from_a_client_outside_the_proxies_are_ignored(
    client: httpx.Client, services: Services, server: LiveServer
) -> None:
    account = make_account(services)
    response = remove_background(client, account, **{"X-Forwarded-Proto": "https"})
    assert base_of(response) == server.url


@pytest.mark.settings(public_base_url="https://retouch.example.com/api")
def test_the_public_base_url_wins_and_its_host_is_served(
    client: httpx.Client, services: Services
) -> None:
    account = make_account(services)
    for host in ("retouch.example.com", "127.0.0.1"):
        response = remove_background(client, account, Host=host, **{"X-Forwarded-Proto": "http"})
        assert response.json()["result_url"].startswith(
            "https://retouch.example.com/api/v1/results/"
        )
    assert_envelope(
        remove_background(client, account, Host="evil.example"), 400, "invalid_parameter"
    )


@pytest.mark.settings(allowed_hosts=["*"])
def test_a_star_serves_every_host(client: httpx.Client, services: Services) -> None:
    account = make_account(services)
    response = remove_background(client, account, Host="anything.example:81")
    assert base_of(response) == "http://anything.example:81"
