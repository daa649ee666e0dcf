"""The ``retouch`` command as a new user and an operator meet it, in real processes."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import httpx

from tests.utils.processes import run_cli, serve, worker

KEY = re.compile(r"sk_[A-Za-z0-9_-]{43}")


def test_first_serve_creates_a_default_account_and_prints_a_working_curl_line(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    with serve(tmp_path / "serve.log", data_dir=data, starter_credits="25") as node:
        printed = node.output()
        curl = next(
            line.strip() for line in printed.splitlines() if line.strip().startswith("curl")
        )
        words = shlex.split(curl)
        key = words[words.index("-H") + 1].removeprefix("X-API-KEY: ")
        assert KEY.fullmatch(key)
        response = httpx.get(words[-1], headers={"X-API-KEY": key})
        assert response.status_code == 200
        assert response.json() == {"credits_remaining": "25"}
    # A second start finds the account and prints no key.
    with serve(tmp_path / "again.log", data_dir=data) as node:
        assert not KEY.search(node.output())


def test_account_key_and_credit_administration(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = run_cli("accounts", "create", "acme", "--credits", "10", data_dir=data)
    assert created.returncode == 0, created.stderr
    first_key = KEY.search(created.stdout)
    assert first_key

    granted = run_cli("credits", "grant", "acme", "5", data_dir=data)
    assert "acme: 15 credits" in granted.stdout

    second = run_cli("keys", "create", "acme", data_dir=data)
    second_key = KEY.search(second.stdout)
    assert second_key and second_key.group() != first_key.group()

    listing = run_cli("keys", "list", "acme", data_dir=data).stdout
    assert first_key.group()[:10] in listing and first_key.group() not in listing
    assert listing.count("active") == 2

    accounts = run_cli("accounts", "list", data_dir=data).stdout
    assert re.search(r"acme\s*│\s*15\s*│\s*5", accounts)

    assert run_cli("keys", "revoke", "1", data_dir=data).returncode == 0
    again = run_cli("keys", "revoke", "1", data_dir=data)
    assert again.returncode == 1 and "no active key" in again.stderr

    with serve(tmp_path / "serve.log", data_dir=data) as node:
        assert (
            httpx.get(
                f"{node.url}/v1/credits", headers={"X-API-KEY": first_key.group()}
            ).status_code
            == 401
        )
        assert httpx.get(
            f"{node.url}/v1/credits", headers={"X-API-KEY": second_key.group()}
        ).json() == {"credits_remaining": "15"}

    duplicate = run_cli("accounts", "create", "acme", data_dir=data)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    missing = run_cli("credits", "grant", "nobody", "5", data_dir=data)
    assert missing.returncode == 1 and "No account named 'nobody'" in missing.stderr


def test_json_logs_carry_request_and_account_but_never_the_key(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = run_cli("accounts", "create", "acme", "--credits", "3", data_dir=data)
    key = KEY.search(created.stdout)
    assert key
    with serve(tmp_path / "serve.log", data_dir=data, log_json="true") as node:
        response = httpx.get(f"{node.url}/v1/credits", headers={"X-API-KEY": key.group()})
        request_id = response.headers["X-Request-Id"]
        httpx.get(f"{node.url}/v1/credits", headers={"X-API-KEY": "sk_wrong"})
        time.sleep(0.2)
        output = node.output()
    assert key.group() not in output and "sk_wrong" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "retouch.access"]
    ours = next(line for line in access if line["request_id"] == request_id)
    assert ours["account_id"] == 1
    assert (ours["method"], ours["path"], ours["status"]) == ("GET", "/v1/credits", 200)
    assert ours["duration_ms"] >= 0 and ours["level"] == "INFO"
    assert any(line["status"] == 401 and line["account_id"] is None for line in access)


def test_a_misspelt_setting_is_named_at_start_with_the_real_one(tmp_path: Path) -> None:
    config = tmp_path / "retouch.toml"
    config.write_text("starter_credit = 5\n")
    settings = {
        "data_dir": str(tmp_path / "data"),
        "config_file": str(config),
        "allow_private_urls": "true",
    }
    expected = [
        "RETOUCH_ALLOW_PRIVATE_URLS is not a Retouch setting and is ignored; did you mean "
        "RETOUCH_FETCH_ALLOW_NETWORKS or RETOUCH_WEBHOOK_ALLOW_NETWORKS?",
        f"{config}: key 'starter_credit' is not a Retouch setting and is ignored; did you mean "
        "starter_credits?",
    ]
    with serve(tmp_path / "serve.log", **settings) as node:
        output = node.output()
    for message in expected:
        assert message in output
    log = tmp_path / "worker.log"
    with worker(log, **settings):
        deadline = time.monotonic() + 30
        while expected[-1] not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    for message in expected:
        assert message in log.read_text()
