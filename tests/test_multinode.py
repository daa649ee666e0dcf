"""Two `retouch serve` nodes and a `retouch worker` sharing one PostgreSQL, one Redis and one S3
bucket, and nothing on disk: what a client does on one node holds on the other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.db import empty_tables
from tests.utils.images import composite, encode
from tests.utils.people import garment_rgba, small_portrait
from tests.utils.processes import free_port, run_cli, serve, worker
from tests.utils.seaweed import Seaweed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

IMAGE = encode(composite("flat")[0][::2, ::2].copy())


@pytest.fixture
def shared(
    tmp_path: Path, postgres_url: str, redis_url: str, seaweed: Seaweed
) -> Iterator[dict[str, str]]:
    yield {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "redis_prefix": uuid.uuid4().hex,
        "results_url": f"s3://retouch-{uuid.uuid4().hex[:8]}/results",
        "s3_endpoint_url": seaweed.endpoint_url,
        "result_secret": "s" * 40,
        "run_jobs": "false",
    }
    empty_tables(postgres_url)


def account(shared: dict[str, str], tmp_path: Path, name: str, *args: str) -> dict[str, str]:
    created = run_cli("accounts", "create", name, *args, data_dir=str(tmp_path / "cli"), **shared)
    assert created.returncode == 0, created.stderr
    key = next(word for word in created.stdout.split() if word.startswith("sk_"))
    return {"X-API-KEY": key}


def remove_background(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/remove-background",
        headers=headers,
        files={"image": ("a.png", IMAGE)},
        timeout=60,
    )


def test_two_nodes_share_results_limits_credits_idempotency_and_jobs(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    # Each node has its own data dir: nothing is shared through the disk.
    with (
        serve(tmp_path / "a.log", data_dir=str(tmp_path / "a"), **shared) as node_a,
        serve(tmp_path / "b.log", data_dir=str(tmp_path / "b"), **shared) as node_b,
    ):
        busy = account(shared, tmp_path, "busy", "--credits", "100", "--rate-limit", "1000")

        # A result created on A is served through B.
        made = remove_background(node_a.url, busy)
        assert made.status_code == 200, made.text
        link = urlsplit(made.json()["result_url"])
        on_b = httpx.get(f"{node_b.url}{link.path}?{link.query}")
        assert on_b.status_code == 200 and on_b.headers["content-type"] == "image/png"

        # An Idempotency-Key replays across nodes, charged once.
        key = {**busy, "Idempotency-Key": "order-1"}
        first = remove_background(node_a.url, key)
        again = remove_background(node_b.url, key)
        assert first.status_code == again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        credits = httpx.get(f"{node_b.url}/v1/credits", headers=busy).json()
        assert credits == {"credits_remaining": "98"}

        # One account's credits are spent exactly once across nodes.
        thrifty = account(shared, tmp_path, "thrifty", "--credits", "3", "--rate-limit", "1000")
        with ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(
                    lambda node: remove_background(node.url, thrifty).status_code,
                    [node_a, node_b] * 3,
                )
            )
        assert sorted(statuses) == [200] * 3 + [403] * 3
        assert httpx.get(f"{node_a.url}/v1/credits", headers=thrifty).json() == {
            "credits_remaining": "0"
        }

        # The rate limit is one limit, whichever node is asked.
        limited = account(shared, tmp_path, "limited", "--credits", "1")
        with httpx.Client(headers=limited) as http:
            codes = [
                http.get(f"{node.url}/v1/credits").status_code for node in (node_a, node_b) * 4
            ]
        assert codes.count(200) == 5 and codes[5:] == [429] * 3

        # A job submitted on A is run by a separate worker and read on B.
        with worker(tmp_path / "worker.log", data_dir=str(tmp_path / "w"), **shared):
            submitted = httpx.post(
                f"{node_a.url}/v1/try-on",
                headers=busy,
                files={
                    "person_image": ("p.png", encode(small_portrait())),
                    "garment_image": ("g.png", encode(garment_rgba("tshirt"))),
                },
                data={"wait_for_result": "false", "preprocess_garment": "false"},
                timeout=60,
            )
            assert submitted.status_code == 202, submitted.text
            job = submitted.json()["job_id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                document = httpx.get(f"{node_b.url}/v1/try-on/job/{job}", headers=busy).json()
                if document["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            assert document["status"] == "completed", document
            result = urlsplit(document["result_url"])
            assert httpx.get(f"{node_a.url}{result.path}?{result.query}").status_code == 200


def worker_processes(parent: int) -> list[int]:
    """The pids of the server processes `retouch serve --workers N` spawned under ``parent``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # The command may contain spaces and parentheses; the fields after its ")" do not.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"multiprocessing.spawn" in cmdline:
            children.append(int(entry.name))
    return children


def test_serve_workers_runs_processes_that_each_load_the_models_once(tmp_path: Path) -> None:
    metrics_port = free_port()
    settings = {
        "data_dir": str(tmp_path / "data"),
        "workers": "2",
        "metrics_port": str(metrics_port),
    }
    with serve(tmp_path / "serve.log", **settings) as node:
        processes = worker_processes(node.process.pid)
        assert len(processes) == 2
        headers = {"X-API-KEY": account_key(node.output())}
        # Fresh connections, so the kernel spreads them over both processes' shared socket.
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(lambda _: remove_background(node.url, headers).status_code, range(8))
            )
        assert statuses == [200] * 8
        assert httpx.get(f"{node.url}/v1/credits", headers=headers).json() == {
            "credits_remaining": "92"
        }
        # Each process loaded its models at start, once, and never again per request.
        assert node.output().count("Loading u2netp") == 2
        # Whichever process a scrape of the metrics port reaches, it counts the requests of
        # both; the API's port serves no metrics.
        for _ in range(4):
            with httpx.Client() as fresh:  # a new connection each time, as a scraper makes
                assert served(fresh.get(f"http://127.0.0.1:{metrics_port}/metrics").text) == 8
                assert fresh.get(f"{node.url}/metrics").status_code == 404
    for pid in processes:
        assert not Path(f"/proc/{pid}").exists()


def account_key(output: str) -> str:
    """The default account's key, which the first `retouch serve` prints once."""
    return next(word for word in output.split() if word.startswith("sk_"))


def served(metrics: str) -> float:
    """Successful remove-background requests counted in a Prometheus text exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "retouch_http_requests_total"
        and sample.labels == {"route": "/v1/remove-background", "method": "POST", "status": "200"}
    )
