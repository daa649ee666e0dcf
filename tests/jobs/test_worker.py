"""`retouch worker` as a separate process: API nodes that don't run jobs hand them over."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.utils.images import encode
from tests.utils.people import garment_rgba, small_portrait
from tests.utils.processes import run_cli, serve, worker


def submit(url: str, key: str) -> str:
    response = httpx.post(
        f"{url}/v1/try-on",
        headers={"X-API-KEY": key},
        files={
            "person_image": ("person.png", encode(small_portrait())),
            "garment_image": ("garment.png", encode(garment_rgba("tshirt"))),
        },
        data={"wait_for_result": "false"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def status(url: str, key: str, job_id: str) -> str:
    response = httpx.get(f"{url}/v1/try-on/job/{job_id}", headers={"X-API-KEY": key})
    return str(response.json()["status"])


def wait_until(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("queue", ["redis", "database"])
def test_jobs_submitted_to_an_api_node_are_run_by_a_worker(
    tmp_path: Path, request: pytest.FixtureRequest, queue: str
) -> None:
    settings = {"data_dir": str(tmp_path / "data"), "run_jobs": "false"}
    if queue == "redis":
        settings |= {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": uuid.uuid4().hex,
        }
    created = run_cli(
        "accounts", "create", "acme", "--credits", "5", "--rate-limit", "1000", **settings
    )
    key = next(word for word in created.stdout.split() if word.startswith("sk_"))

    with serve(tmp_path / "api.log", **settings) as api:
        job_id = submit(api.url, key)
        # The API node runs no jobs: without a worker the job waits.
        time.sleep(1.5)
        assert status(api.url, key, job_id) == "pending"

        with worker(tmp_path / "worker.log", **settings) as process:
            assert wait_until(lambda: status(api.url, key, job_id) == "completed", 60), (
                tmp_path / "worker.log"
            ).read_text()
            second = submit(api.url, key)
            assert wait_until(lambda: status(api.url, key, second) == "completed", 30)
        # Stopped with SIGTERM, it shuts down cleanly.
        assert process.returncode == 0
        credits = httpx.get(f"{api.url}/v1/credits", headers={"X-API-KEY": key}).json()
        assert credits == {"credits_remaining": "3"}
    assert "worker stopped" in (tmp_path / "worker.log").read_text()
