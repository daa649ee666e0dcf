"""Load-and-soak benchmark: a mixed workload at several concurrency levels, then the books.

Why: the per-endpoint benchmarks time one operation at a time. A production node sees them all
at once, for hours, with retries and bad requests mixed in. This script checks what only shows
under that: no 5xx, no request charged without being delivered or delivered without being
charged (idempotent retries included), and no memory creeping up while the load stays the same.
Targets: 0 5xx, 0 lost and 0 double charges, the ledger consistent, RSS growth < 10% per phase.

How: it starts its own ``retouch serve`` on a free loopback port (127.0.0.1 only), in its own
process group, with a fresh temporary data dir (SQLite there by default; ``--database-url``,
``--redis-url``, ``--results-url`` and ``--s3-endpoint-url`` pass through as ``RETOUCH_*``
settings so it can run on PostgreSQL, Redis and S3, ``--workers N`` runs ``retouch serve
--workers N``), and creates an account ``soak-<random>`` with a million credits and a rate limit of
100000/s through the CLI. The server logs JSON lines, so a 5xx's request id can be found in its
log; the log excerpt is printed with the report.

Each client is a thread with its own keep-alive connection that picks operations at random (fixed
``--seed``) until the phase's ``--duration`` has passed (or ``--max-requests`` were sent):
mostly ``POST /v1/remove-background`` on 256-384 px JPEGs (some with ``shadow``, some ``crop``),
some of them with an ``Idempotency-Key`` sent twice (half the time the duplicate goes concurrently
on a second connection, where 409 ``idempotency_key_in_use`` is a correct answer) and always
retried once more afterwards: exactly one of the tries may be charged. Then ``/v1/upscale``
scale=2 on 96-128 px images, ``/v1/outpaint`` on 128-160 px images, ``/v1/generate-background``
on 256 px ones, ``GET /v1/credits``, and deliberately bad requests (an unknown key: 401; bytes that
are no image: 400 ``malformed_image``). Half of the image calls ask ``Accept: image/*``; the others
get the default JSON ``result_url``, which is then fetched (``GET /v1/results/...``, counted as a
request of its own). A paid call counts as delivered only once its image has been decoded.

Before the phases, every operation runs once (loads the models) and then ``--warmup`` seconds at
the highest client count, so the first phase starts warm. Each phase (``--clients 8,32``, each for
``--duration`` seconds; the issue's soak is ``--duration 1800``) reports requests, throughput,
p50/p95/p99 latency overall and per operation, counts by status code and by ``error_code``, 5xx,
the server's CPU seconds per paid delivery (user+system over its process tree: unlike wall-clock
numbers it barely moves when other work shares the machine), and the server's RSS sampled every
100 ms over its whole process tree (uvicorn's worker processes included): peak of the sum, peak
per pid, and growth, the mean RSS over the last 10% of the phase against the first 10% (the mean
over each tenth is printed too, to tell a plateau from a climb). Mean RSS over a window, not
single samples, because RSS moves with the images in flight.

The books: the balance charged by the server (``GET /v1/credits`` before minus after) must equal
the sum of ``X-Credits-Charged`` over the deliveries the client observed that were not replays
(``Idempotent-Replayed: true`` costs nothing). The ledger is also read directly (SQLAlchemy on the
same database): per request id (``X-Request-Id`` is the ledger's request id) the net charge must
be the delivered price, or 0 for everything not delivered; a delivered request with no net charge
is a *lost charge*, a request charged more than it delivered a *double charge*. The balance must
equal the sum of the account's ledger rows and no reservation may still be held.

Ratios are against baselines from the same run: throughput at the higher client count against
the lowest (and per client), remove-background p50 at each level against the lowest level's, and
each level's remove-background p50 against ``GET /v1/credits``'s (an authenticated call that does
no image work: what the image work adds on top of the request overhead). Other work on this
machine makes wall-clock numbers noisy; the load average is printed before and after.

Exit status: 0 when the run completed, whatever the performance numbers (benchmarks report; the
PASS/FAIL lines are information); 1 when the books do not balance (a lost or double charge, the
ledger inconsistent, a reservation still held) or the script itself failed (the server did not
start or died, the watchdog fired); 2 for bad usage; 130 when interrupted. No new request starts
after a phase's duration; a watchdog aborts a run still going 120 s after its whole budget
(``--max-seconds``, by default warm-up plus phases plus 10 minutes); the server is stopped however
the script ends. Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/soak.py --clients 8,32 --duration 60
    .venv/bin/python bench/soak.py --duration 1800          # the 30-minute soak
    .venv/bin/python bench/soak.py --duration 30 --workers 2 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/soak_x \\
        --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from common import (
    MIB,
    SAMPLE_INTERVAL_S,
    WATCHDOG_GRACE_S,
    Deadline,
    HardStop,
    RssSampler,
    Server,
    install_stop_handlers,
    load_average,
    ms,
    multipart,
    parse_env,
    retouch_command,
    retouch_server,
    run_clients,
)
from PIL import Image
from product_shots import product_shot

BAD_KEY = "sk_" + "0" * 43
RSS_GROWTH_TARGET = 0.10
# Credits per call with the server's default prices (RETOUCH_PRICE_* in --retouch-env override).
DEFAULT_PRICES = {
    "RETOUCH_PRICE_REMOVE_BACKGROUND": 1,
    "RETOUCH_PRICE_SHADOW": 3,
    "RETOUCH_PRICE_UPSCALE": 1,
    "RETOUCH_PRICE_OUTPAINT": 1,
    "RETOUCH_PRICE_GENERATE_BACKGROUND": 1,
}
# Relative weights of the operations a client picks from.
MIX = {
    "remove-background": 45,
    "remove-background idem": 12,
    "upscale": 8,
    "outpaint": 6,
    "generate-background": 5,
    "credits": 14,
    "bad key": 5,
    "malformed image": 5,
}
RESULTS = "results (GET)"


# --- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    content: bytes
    content_type: str
    price: int


@dataclass(frozen=True)
class Op:
    """One kind of request: where it goes, the bodies it cycles through, what it should get."""

    name: str
    method: str
    path: str
    bodies: tuple[Body, ...] = ()
    expect: int = 200
    bad_key: bool = False
    idempotent: bool = False

    @property
    def paid(self) -> bool:
        return self.expect == 200 and bool(self.bodies)


def jpeg_body(field_data: dict[str, str], jpeg: bytes, price: int) -> Body:
    content, content_type = multipart({"image": ("shot.jpg", jpeg, "image/jpeg")}, field_data)
    return Body(content, content_type, price)


def build_ops(prices: dict[str, int]) -> dict[str, Op]:
    """Every operation with its pre-encoded bodies (the client spends little CPU per call)."""

    def shot(i: int, size: tuple[int, int]) -> bytes:
        products, backgrounds = ("bottle", "box", "mug"), ("flat", "gradient", "grain", "blobs")
        return product_shot(products[i % 3], backgrounds[i % 4], size=size, seed=i).jpeg

    rb, shadow = prices["RETOUCH_PRICE_REMOVE_BACKGROUND"], prices["RETOUCH_PRICE_SHADOW"]
    cutouts: list[Body] = []
    for i, size in enumerate([(256, 256), (288, 384), (384, 320), (320, 256), (256, 384)]):
        jpeg = shot(i, size)
        cutouts.append(jpeg_body({}, jpeg, rb))
        cutouts.append(jpeg_body({"crop": "true", "margin": "5%"}, jpeg, rb))
        if i % 2 == 0:
            cutouts.append(jpeg_body({"shadow": "true"}, jpeg, rb + shadow))
    tiny = [shot(i, size) for i, size in enumerate([(96, 96), (96, 128), (128, 112), (112, 96)])]
    small = [shot(i, size) for i, size in enumerate([(128, 160), (144, 128), (160, 160)])]
    scenes = ["marble", "wood", "linen"]
    return {
        "remove-background": Op(
            "remove-background", "POST", "/v1/remove-background", tuple(cutouts)
        ),
        "remove-background idem": Op(
            "remove-background idem",
            "POST",
            "/v1/remove-background",
            tuple(cutouts),
            idempotent=True,
        ),
        "upscale": Op(
            "upscale",
            "POST",
            "/v1/upscale",
            tuple(jpeg_body({"scale": "2"}, j, prices["RETOUCH_PRICE_UPSCALE"]) for j in tiny),
        ),
        "outpaint": Op(
            "outpaint",
            "POST",
            "/v1/outpaint",
            tuple(
                jpeg_body(
                    {"left": "32", "right": str(16 + 16 * i), "top": "0", "bottom": "16"},
                    j,
                    prices["RETOUCH_PRICE_OUTPAINT"],
                )
                for i, j in enumerate(small)
            ),
        ),
        "generate-background": Op(
            "generate-background",
            "POST",
            "/v1/generate-background",
            tuple(
                jpeg_body(
                    {"scene": scenes[i % 3]},
                    shot(i, (256, 256)),
                    prices["RETOUCH_PRICE_GENERATE_BACKGROUND"],
                )
                for i in range(3)
            ),
        ),
        "credits": Op("credits", "GET", "/v1/credits"),
        "bad key": Op(
            "bad key",
            "POST",
            "/v1/remove-background",
            (cutouts[0],),
            expect=401,
            bad_key=True,
        ),
        "malformed image": Op(
            "malformed image",
            "POST",
            "/v1/remove-background",
            (
                Body(
                    *multipart({"image": ("shot.jpg", b"not an image " * 40, "image/jpeg")}, {}),
                    price=0,
                ),
            ),
            expect=400,
        ),
    }


@dataclass
class Outcome:
    """One HTTP request and what came of it."""

    op: str
    began: float  # time.monotonic()
    latency: float  # seconds to the response (body included)
    status: int | None = None  # None: no response (transport error)
    error_code: str | None = None
    request_id: str | None = None
    price: int = 0  # what the call should cost when delivered
    charged: int = 0  # X-Credits-Charged
    replayed: bool = False
    delivered: bool = False  # a paid call whose image was decoded
    idem_key: str | None = None
    expected: bool = True  # the status is one this request may correctly get
    note: str = ""  # transport error, undelivered result, body excerpt of a surprise


def decode_image(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


class Client:
    """One simulated client: a thread with its own keep-alive connection."""

    def __init__(self, server: Server, ops: dict[str, Op], *, seed: int, timeout: float) -> None:
        self.server = server
        self.ops = ops
        self.rng = random.Random(seed)
        self.http = httpx.Client(base_url=server.base_url, timeout=timeout)
        self.timeout = timeout

    def close(self) -> None:
        self.http.close()

    def pick(self) -> Op:
        names = list(MIX)
        return self.ops[self.rng.choices(names, weights=[MIX[n] for n in names])[0]]

    def run(self, op: Op) -> list[Outcome]:
        """One operation: one request, or for idempotent ones two or three tries of the same."""
        if op.name == "credits":
            return [self.send(self.http, op, None, {})]
        body = self.rng.choice(op.bodies)
        headers = {"Accept": "image/*"} if self.rng.random() < 0.5 else {}
        if not op.idempotent:
            return self.send_and_fetch(self.http, op, body, headers)
        headers["Idempotency-Key"] = f"soak-{uuid.uuid4().hex}"
        outcomes: list[Outcome] = []
        if self.rng.random() < 0.5:
            # The duplicate on a second connection, a moment later: a client that timed out and
            # retried while the first try still runs.
            delay = self.rng.uniform(0, 0.2)
            second: list[Outcome] = []

            def duplicate() -> None:
                time.sleep(delay)
                with httpx.Client(base_url=self.server.base_url, timeout=self.timeout) as http:
                    second.extend(self.send_and_fetch(http, op, body, headers, concurrent=True))

            thread = threading.Thread(target=duplicate, daemon=True)
            thread.start()
            outcomes += self.send_and_fetch(self.http, op, body, headers, concurrent=True)
            thread.join(self.timeout * 2 + 5)
            outcomes += second
        else:
            outcomes += self.send_and_fetch(self.http, op, body, headers)
        # And a retry once the first tries have answered: a replay if one of them succeeded.
        outcomes += self.send_and_fetch(self.http, op, body, headers)
        return outcomes

    def send_and_fetch(
        self,
        http: httpx.Client,
        op: Op,
        body: Body,
        headers: dict[str, str],
        *,
        concurrent: bool = False,
    ) -> list[Outcome]:
        outcome = self.send(http, op, body, headers, concurrent=concurrent)
        outcomes = [outcome]
        if outcome.status == 200 and op.paid and outcome.note.startswith("result_url "):
            url = outcome.note.removeprefix("result_url ")
            outcome.note = ""
            fetched = self.send(http, Op(RESULTS, "GET", url), None, {})
            outcomes.append(fetched)
            if fetched.status == 200 and fetched.delivered:
                outcome.delivered = True
            else:
                outcome.note = f"result not delivered: {fetched.status} {fetched.note}"
        return outcomes

    def send(
        self,
        http: httpx.Client,
        op: Op,
        body: Body | None,
        headers: dict[str, str],
        *,
        concurrent: bool = False,
    ) -> Outcome:
        request_headers = dict(headers)
        if op.name != RESULTS:
            request_headers["X-API-KEY"] = BAD_KEY if op.bad_key else self.server.key
        if body is not None:
            request_headers["Content-Type"] = body.content_type
        began = time.monotonic()
        outcome = Outcome(op=op.name, began=began, latency=0.0, price=body.price if body else 0)
        if op.idempotent:
            outcome.idem_key = headers.get("Idempotency-Key")
        try:
            response = http.request(
                op.method,
                op.path,
                content=body.content if body is not None else None,
                headers=request_headers,
            )
        except httpx.HTTPError as exc:
            outcome.latency = time.monotonic() - began
            outcome.expected = False
            outcome.note = f"{type(exc).__name__}: {exc}"
            return outcome
        outcome.latency = time.monotonic() - began
        outcome.status = response.status_code
        outcome.request_id = response.headers.get("x-request-id")
        outcome.charged = int(response.headers.get("x-credits-charged", "0") or 0)
        outcome.replayed = response.headers.get("idempotent-replayed") == "true"
        if response.status_code != 200:
            with contextlib.suppress(ValueError, AttributeError):
                outcome.error_code = response.json().get("error_code")
            allowed = {op.expect}
            if op.expect == 200 and op.paid:
                allowed.add(429)  # admission control shedding load: correct, and reported
            if concurrent:
                allowed.add(409)  # the other try still holds the idempotency key
            outcome.expected = response.status_code in allowed
            if not outcome.expected:
                outcome.note = response.text[:300]
            return outcome
        outcome.expected = op.expect == 200
        try:
            if op.name == RESULTS:
                decode_image(response.content)
                outcome.delivered = True
            elif op.paid:
                if response.headers.get("content-type", "").startswith("image/"):
                    decode_image(response.content)
                    outcome.delivered = True
                else:
                    outcome.note = "result_url " + response.json()["result_url"]
            elif op.name == "credits":
                int(response.json()["credits_remaining"])
        except (OSError, ValueError, KeyError, TypeError, Image.DecompressionBombError) as exc:
            outcome.delivered = False
            outcome.note = f"bad 200 body: {type(exc).__name__}: {exc}"
        return outcome


# --- memory ----------------------------------------------------------------------------------


class TreeSampler(RssSampler):
    """``RssSampler`` that also keeps every sample, per pid, for windows and per-process peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.samples: list[tuple[float, dict[int, int]]] = []  # (monotonic time, pid -> RSS)
        self.labels: dict[int, str] = {pid: "retouch serve"}

    def _sample(self) -> dict[int, int]:
        rss: dict[int, int] = {}
        for proc in self._procs():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                rss[proc.pid] = proc.memory_info().rss
                if proc.pid not in self.labels:
                    cmdline = " ".join(proc.cmdline())
                    self.labels[proc.pid] = (
                        "resource tracker"
                        if "resource_tracker" in cmdline
                        else "uvicorn worker"
                        if "spawn" in cmdline
                        else proc.name()
                    )
        return rss

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            rss = self._sample()
            with self._lock:
                self.samples.append((time.monotonic(), rss))
                self._peak = max(self._peak, sum(rss.values()))

    def window(self, start: float, end: float) -> list[dict[int, int]]:
        with self._lock:
            return [rss for t, rss in self.samples if start <= t <= end]


@dataclass
class Memory:
    peak_total: int = 0
    peak_by_pid: dict[int, int] = field(default_factory=dict)
    first: float = float("nan")  # mean tree RSS over the first 10% of the phase
    last: float = float("nan")  # and over its last 10%
    tenths: list[float] = field(default_factory=list)  # mean over each tenth: plateau or climb

    @property
    def growth(self) -> float:
        return self.last / self.first - 1 if self.first > 0 else float("nan")


def memory_over(samples: list[dict[int, int]]) -> Memory:
    memory = Memory()
    if not samples:
        return memory
    totals = [sum(s.values()) for s in samples]
    memory.peak_total = max(totals)
    for sample in samples:
        for pid, rss in sample.items():
            memory.peak_by_pid[pid] = max(memory.peak_by_pid.get(pid, 0), rss)
    tenth = max(1, len(totals) // 10)
    memory.first = float(np.mean(totals[:tenth]))
    memory.last = float(np.mean(totals[-tenth:]))
    memory.tenths = [float(np.mean(part)) for part in np.array_split(totals, 10) if len(part)]
    return memory


# --- phases ----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    clients: int
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    stop_at: float = 0.0  # no new operation starts after this
    finished: float = 0.0
    memory: Memory = field(default_factory=Memory)
    stopped_by_count: bool = False
    stuck_clients: int = 0
    cpu_seconds: float = 0.0  # the server tree's user+system CPU over the phase

    @property
    def cpu_per_delivery(self) -> float:
        """Barely moves when other work shares the machine, unlike wall-clock numbers."""
        return self.cpu_seconds / self.delivered if self.delivered else float("nan")

    @property
    def wall(self) -> float:
        return self.finished - self.started

    @property
    def throughput(self) -> float:
        return len(self.outcomes) / self.wall if self.wall > 0 else 0.0

    def latencies(self, op: str | None = None) -> list[float]:
        return [o.latency for o in self.outcomes if o.status is not None and op in (None, o.op)]

    def percentile(self, q: float, op: str | None = None) -> float:
        values = self.latencies(op)
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def delivered(self) -> int:
        return sum(o.delivered and not o.replayed and o.op != RESULTS for o in self.outcomes)

    @property
    def server_errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is not None and o.status >= 500]


def run_phase(
    phase: Phase,
    server: Server,
    ops: dict[str, Op],
    *,
    duration: float,
    max_requests: int,
    seed: int,
    timeout: float,
    deadline: Deadline,
    sampler: TreeSampler,
) -> Phase:
    """``phase.clients`` clients for ``duration`` seconds (or until ``max_requests``)."""
    lock = threading.Lock()
    cpu_before = sampler.tree_cpu()
    phase.started = time.monotonic()
    phase.stop_at = phase.started + duration

    def worker(index: int) -> None:
        client = Client(server, ops, seed=seed * 1000 + index, timeout=timeout)
        try:
            while time.monotonic() < phase.stop_at and not deadline.expired():
                with lock:
                    if len(phase.outcomes) >= max_requests:
                        phase.stopped_by_count = True
                        return
                outcomes = client.run(client.pick())
                with lock:
                    phase.outcomes.extend(outcomes)
        finally:
            client.close()

    phase.stuck_clients = run_clients(
        [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(phase.clients)],
        # An operation is at most three requests (two of them concurrent), each within the
        # timeout.
        give_up=phase.stop_at + 2 * timeout + 30,
    )
    with lock:
        phase.outcomes = list(phase.outcomes)
        ends = [o.began + o.latency for o in phase.outcomes]
    phase.finished = max(ends, default=time.monotonic())
    phase.memory = memory_over(sampler.window(phase.started, min(phase.stop_at, phase.finished)))
    phase.cpu_seconds = sampler.tree_cpu() - cpu_before
    if not server.alive():
        raise RuntimeError(f"retouch serve died during {phase.name}:\n{server.log_tail()}")
    return phase


# --- the books -------------------------------------------------------------------------------


@dataclass
class Books:
    start_balance: int = 0
    end_balance: int = 0
    client_charged: int = 0  # X-Credits-Charged over delivered, non-replayed calls
    charged_undelivered: int = 0  # X-Credits-Charged on 200s whose result could not be fetched
    price_mismatches: int = 0
    keys_charged_twice: int = 0
    idem_keys: int = 0
    # From the ledger (None when it could not be read).
    ledger_error: str | None = None
    ledger_sum: int | None = None
    account_balance: int | None = None
    held_reservations: int | None = None
    ledger_charged: int | None = None  # net charges over the run
    lost: list[str] = field(default_factory=list)  # request ids delivered, not charged
    double: list[str] = field(default_factory=list)  # request ids charged beyond delivery
    unattributed: int = 0  # net credits charged to request ids the client never saw
    unknown_outcomes: int = 0  # requests with no response: their charge cannot be attributed

    @property
    def server_charged(self) -> int:
        return self.start_balance - self.end_balance

    @property
    def lost_count(self) -> int:
        """Requests delivered but not charged (from the totals, in credits, without a ledger)."""
        if self.ledger_sum is None:
            return max(0, self.client_charged - self.server_charged)
        return len(self.lost)

    @property
    def double_count(self) -> int:
        """Requests charged beyond what they delivered; credits charged to request ids the
        client never saw count too unless some request got no response (then they may be its)."""
        if self.ledger_sum is None:
            return max(0, self.server_charged - self.client_charged)
        unexplained = self.unattributed if self.unknown_outcomes == 0 else 0
        return len(self.double) + max(0, unexplained)

    @property
    def balanced(self) -> bool:
        ledger_ok = self.ledger_sum is None or (
            self.ledger_sum == self.account_balance == self.end_balance
            and self.held_reservations == 0
        )
        return (
            self.server_charged == self.client_charged
            and self.lost_count == 0
            and self.double_count == 0
            and ledger_ok
        )


def balance(server: Server) -> int:
    response = httpx.get(
        f"{server.base_url}/v1/credits", headers={"X-API-KEY": server.key}, timeout=30
    )
    response.raise_for_status()
    return int(response.json()["credits_remaining"])


def keep_books(outcomes: Sequence[Outcome], books: Books, database_url: str, account: str) -> None:
    paid = [o for o in outcomes if o.status == 200 and o.charged and not o.replayed]
    books.client_charged = sum(o.charged for o in paid if o.delivered)
    books.charged_undelivered = sum(o.charged for o in paid if not o.delivered)
    books.price_mismatches = sum(o.charged != o.price for o in paid)
    by_key = Counter(o.idem_key for o in paid if o.idem_key is not None)
    books.idem_keys = len({o.idem_key for o in outcomes if o.idem_key})
    books.keys_charged_twice = sum(n > 1 for n in by_key.values())
    books.unknown_outcomes = sum(o.status is None and o.op != RESULTS for o in outcomes)
    try:
        ledger = read_ledger(database_url, account)
    except Exception as exc:  # any failure to read it is reported, not fatal
        books.ledger_error = f"{type(exc).__name__}: {exc}"
        return
    books.ledger_sum, books.account_balance, books.held_reservations, net = ledger
    books.ledger_charged = sum(net.values())
    seen: set[str] = set()
    for o in outcomes:
        if o.request_id is None or o.op == RESULTS:
            continue
        seen.add(o.request_id)
        charged = net.get(o.request_id, 0)
        owed = o.charged if o.status == 200 and o.delivered and not o.replayed else 0
        if owed and charged == 0:
            books.lost.append(o.request_id)
        elif charged > owed:
            books.double.append(o.request_id)
    books.unattributed = sum(v for k, v in net.items() if k not in seen)


def read_ledger(database_url: str, account: str) -> tuple[int, int, int, dict[str, int]]:
    """(sum of the account's ledger, its balance, reservations still held, net charge per
    request id), with plain SQL on the tables of ``retouch.db.models``."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            account_id, balance_now = conn.execute(
                sa.text("SELECT id, balance FROM accounts WHERE name = :name"), {"name": account}
            ).one()
            total = conn.execute(
                sa.text("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account_id = :a"),
                {"a": account_id},
            ).scalar_one()
            held = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM reservations "
                    "WHERE account_id = :a AND status = 'reserved'"
                ),
                {"a": account_id},
            ).scalar_one()
            rows = conn.execute(
                sa.text(
                    "SELECT request_id, -SUM(amount) FROM ledger WHERE account_id = :a "
                    "AND kind IN ('charge', 'refund') GROUP BY request_id"
                ),
                {"a": account_id},
            ).all()
    finally:
        engine.dispose()
    net = {str(request_id): int(amount) for request_id, amount in rows if int(amount) != 0}
    return int(total), int(balance_now), int(held), net


# --- output ----------------------------------------------------------------------------------


def pct(x: float) -> str:
    return "-" if x != x else f"{x * 100:+.1f}%"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "-"


def print_phase(phase: Phase, labels: dict[int, str]) -> None:
    outcomes = phase.outcomes
    transport = [o for o in outcomes if o.status is None]
    note = "  (stopped by --max-requests)" if phase.stopped_by_count else ""
    if phase.stuck_clients:
        note += f"  ({phase.stuck_clients} clients still stuck when abandoned)"
    print(
        f"\n{phase.name}: {phase.clients} clients, {len(outcomes)} requests in {phase.wall:.1f} s "
        f"= {phase.throughput:.2f} req/s; {phase.delivered} paid deliveries "
        f"({phase.delivered / phase.wall if phase.wall else 0:.2f}/s, server CPU "
        f"{phase.cpu_per_delivery:.2f} s each); latency p50 "
        f"{ms(phase.percentile(50))} ms, p95 {ms(phase.percentile(95))} ms, p99 "
        f"{ms(phase.percentile(99))} ms; 5xx {len(phase.server_errors)}; no response "
        f"{len(transport)}{note}"
    )
    print(
        f"  {'operation':<24} {'requests':>8} {'200':>5} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8}  other statuses"
    )
    for op in [*MIX, RESULTS]:
        mine = [o for o in outcomes if o.op == op]
        if not mine:
            continue
        others = Counter(str(o.status or "none") for o in mine if o.status != 200)
        print(
            f"  {op:<24} {len(mine):>8} {sum(o.status == 200 for o in mine):>5} "
            f"{ms(phase.percentile(50, op)):>8} {ms(phase.percentile(95, op)):>8} "
            f"{ms(phase.percentile(99, op)):>8}  "
            + (", ".join(f"{k}: {v}" for k, v in sorted(others.items())) or "-")
        )
    statuses = Counter(str(o.status or "no response") for o in outcomes)
    codes = Counter(o.error_code for o in outcomes if o.error_code)
    print("  by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print("  by error_code: " + (", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) or "-"))
    replays = sum(o.replayed for o in outcomes)
    print(f"  idempotent replays: {replays}")
    memory = phase.memory
    per_pid = ", ".join(
        f"{pid} {labels.get(pid, '?')} {rss / MIB:.0f}"
        for pid, rss in sorted(memory.peak_by_pid.items())
    )
    print(
        f"  server RSS: peak {memory.peak_total / MIB:.0f} MiB (sum over processes; per pid: "
        f"{per_pid} MiB); mean over first 10% {memory.first / MIB:.0f} MiB, last 10% "
        f"{memory.last / MIB:.0f} MiB: growth {pct(memory.growth)}; mean by tenth of the "
        "phase " + " ".join(f"{t / MIB:.0f}" for t in memory.tenths) + " MiB"
    )
    surprises = [o for o in outcomes if not o.expected]
    for o in surprises[:5]:
        print(
            f"  unexpected: {o.op} -> {o.status or 'no response'} {o.error_code or ''} "
            f"request {o.request_id or '-'}: {o.note[:200]}"
        )
    if len(surprises) > 5:
        print(f"  ... {len(surprises) - 5} more unexpected responses")
    undelivered = [o for o in outcomes if o.status == 200 and o.note.startswith("result not")]
    for o in undelivered[:3]:
        print(f"  undelivered: {o.op} request {o.request_id}: {o.note[:200]}")


def print_run_memory(phases: Sequence[Phase], sampler: TreeSampler) -> None:
    """RSS growth from the start of the first measured phase to the end of the last; the load
    differs between phases, so this is information, the per-phase growth is the target."""
    if len(phases) < 2:
        return
    first = memory_over(sampler.window(phases[0].started, phases[0].stop_at)).first
    last = memory_over(sampler.window(phases[-1].started, phases[-1].stop_at)).last
    print(
        f"\nserver RSS over the run: mean over the first 10% of {phases[0].name} "
        f"{first / MIB:.0f} MiB, over the last 10% of {phases[-1].name} {last / MIB:.0f} MiB: "
        f"{pct(last / first - 1 if first > 0 else float('nan'))} (information: the phases' "
        "loads differ)"
    )


def print_ratios(phases: Sequence[Phase]) -> None:
    if not phases:
        return
    base = phases[0]
    op = "remove-background"
    print(
        f"\nRatios against baselines from this run ({base.clients} clients; GET /v1/credits "
        "as the no-image-work call)"
    )
    print(
        f"  {'clients':>7} {'req/s':>8} {'vs base':>8} {'per client':>10} "
        f"{'rb p50 vs base':>14} {'rb p95 vs base':>14} {'rb p50 / credits p50':>21}"
    )
    for phase in phases:
        per_client = ratio(phase.throughput / phase.clients, base.throughput / base.clients)
        print(
            f"  {phase.clients:>7} {phase.throughput:>8.2f} "
            f"{ratio(phase.throughput, base.throughput):>8} {per_client:>10} "
            f"{ratio(phase.percentile(50, op), base.percentile(50, op)):>14} "
            f"{ratio(phase.percentile(95, op), base.percentile(95, op)):>14} "
            f"{ratio(phase.percentile(50, op), phase.percentile(50, 'credits')):>21}"
        )


def print_books(books: Books) -> None:
    print("\nBooks")
    print(
        f"  balance {books.start_balance} -> {books.end_balance}: server charged "
        f"{books.server_charged}; client saw {books.client_charged} charged on delivered, "
        f"non-replayed calls (+{books.charged_undelivered} on 200s whose result it could not "
        f"fetch); {books.price_mismatches} charges differing from the price list; "
        f"{books.idem_keys} idempotency keys, {books.keys_charged_twice} charged more than once"
    )
    if books.ledger_sum is None:
        print(f"  ledger not read ({books.ledger_error}); lost/double judged from totals only")
    else:
        print(
            f"  ledger: sum {books.ledger_sum}, accounts.balance {books.account_balance}, "
            f"net charges over the run {books.ledger_charged}; reservations still held "
            f"{books.held_reservations}; lost charges {len(books.lost)}, double charges "
            f"{len(books.double)}; net credits on request ids the client never saw "
            f"{books.unattributed} (requests without a response: {books.unknown_outcomes})"
        )
        for rid in books.lost[:5]:
            print(f"  lost charge: request {rid}")
        for rid in books.double[:5]:
            print(f"  double charge: request {rid}")


def print_server_errors(phases: Sequence[Phase], log: Path) -> None:
    errors = [o for p in phases for o in p.outcomes if o.status is not None and o.status >= 500]
    if not errors:
        return
    print(f"\n5xx responses ({len(errors)}); server log excerpts by request id:")
    text = log.read_text(errors="replace").splitlines()
    for o in errors[:3]:
        print(f"  {o.op} -> {o.status} {o.error_code} request {o.request_id}: {o.note[:200]}")
        for line in text:
            if o.request_id and o.request_id in line:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    line = (
                        f"{record.get('level')} {record.get('message')} "
                        + (record.get("exception", "")[-1500:])
                    )
                print("    " + line.replace("\n", "\n    "))


def verdicts(phases: Sequence[Phase], books: Books) -> None:
    """PASS/FAIL against the targets; ``phases`` includes the warm-up (no RSS target there)."""
    fivexx = sum(len(p.server_errors) for p in phases)
    growths = {p.name: p.memory.growth for p in phases if p.name != "warm-up"}
    worst = max(growths.values(), default=float("nan"))

    def line(ok: bool, text: str) -> None:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")

    print("\nTargets")
    line(fivexx == 0, f"0 5xx (got {fivexx}, warm-up included)")
    line(books.lost_count == 0, f"0 lost charges (got {books.lost_count})")
    line(books.double_count == 0, f"0 double charges (got {books.double_count})")
    line(
        books.server_charged == books.client_charged,
        f"server charged == client-observed deliveries ({books.server_charged} vs "
        f"{books.client_charged})",
    )
    if books.ledger_sum is not None:
        line(
            books.ledger_sum == books.account_balance == books.end_balance
            and books.held_reservations == 0,
            "ledger sum == balance, no reservation held",
        )
    line(
        worst == worst and worst < RSS_GROWTH_TARGET,
        f"RSS growth < {RSS_GROWTH_TARGET:.0%} in every phase (worst {pct(worst)}: "
        + ", ".join(f"{k} {pct(v)}" for k, v in growths.items())
        + ")",
    )


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See the module docstring (bench/soak.py) for what is measured and how.",
    )
    parser.add_argument(
        "--clients",
        type=lambda s: [int(c) for c in s.split(",") if c.strip()],
        default=[8, 32],
        help="client counts, one phase each, in this order (default: 8,32)",
    )
    parser.add_argument(
        "--duration", type=float, default=60, help="seconds per phase (default: 60)"
    )
    parser.add_argument(
        "--warmup", type=float, default=15, help="warm-up seconds at the top client count (15)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        help="no new operation starts in a phase after this many requests (default: 200000)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="budget of the whole run; a watchdog aborts it "
        f"{WATCHDOG_GRACE_S:.0f} s later (default: 300 + warm-up and phases, each with "
        "2 x --timeout + 30 s to drain)",
    )
    parser.add_argument("--timeout", type=float, default=60, help="per-request timeout, s (60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the clients (1)")
    parser.add_argument("--workers", type=int, default=None, help="retouch serve --workers N")
    parser.add_argument(
        "--database-url", help="RETOUCH_DATABASE_URL (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--redis-url", help="RETOUCH_REDIS_URL (a unique RETOUCH_REDIS_PREFIX is set)"
    )
    parser.add_argument("--results-url", help="RETOUCH_RESULTS_URL, e.g. s3://bucket/prefix")
    parser.add_argument("--s3-endpoint-url", help="RETOUCH_S3_ENDPOINT_URL")
    parser.add_argument(
        "--retouch", default=None, help="retouch executable (default: next to this python)"
    )
    parser.add_argument(
        "--retouch-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the server, repeatable (e.g. RETOUCH_WORKER_THREADS=1)",
    )
    args = parser.parse_args(argv)
    if not args.clients or min(args.clients) < 1:
        parser.error("--clients must list counts >= 1")
    if args.duration <= 0 or args.warmup < 0 or args.max_requests < 1 or args.timeout <= 0:
        parser.error("--duration and --timeout must be > 0, --warmup >= 0, --max-requests >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    args.retouch_env = parse_env(args.retouch_env)
    if args.max_seconds is None:
        # Start-up, and per phase its duration plus the longest drain (an operation's tries).
        drain = 2 * args.timeout + 30
        args.max_seconds = 300 + args.warmup + drain + len(args.clients) * (args.duration + drain)
    return args


def server_settings(args: argparse.Namespace, run_id: str) -> dict[str, str]:
    settings = {"RETOUCH_LOG_JSON": "true"}
    for name, value in (
        ("RETOUCH_DATABASE_URL", args.database_url),
        ("RETOUCH_REDIS_URL", args.redis_url),
        ("RETOUCH_RESULTS_URL", args.results_url),
        ("RETOUCH_S3_ENDPOINT_URL", args.s3_endpoint_url),
    ):
        if value:
            settings[name] = value
    if args.redis_url:
        settings["RETOUCH_REDIS_PREFIX"] = f"soak-{run_id}"
    settings.update(args.retouch_env)
    return settings


def prices(settings: dict[str, str]) -> dict[str, int]:
    return {k: int(settings.get(k, v)) for k, v in DEFAULT_PRICES.items()}


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]+@", r"//\1:***@", url)


@contextlib.contextmanager
def soak_server(
    workdir: Path, args: argparse.Namespace, settings: dict[str, str], account: str
) -> Iterator[Server]:
    serve_args = ["--workers", str(args.workers)] if args.workers else []
    with retouch_server(
        workdir,
        command=retouch_command(args.retouch),
        settings=settings,
        serve_args=serve_args,
        account=account,
    ) as server:
        yield server


def soak(args: argparse.Namespace, deadline: Deadline, workdir: Path) -> int:
    run_id = uuid.uuid4().hex[:8]
    account = f"soak-{run_id}"
    settings = server_settings(args, run_id)
    ops = build_ops(prices(settings))
    database_url = settings.get(
        "RETOUCH_DATABASE_URL", f"sqlite:///{(workdir / 'retouch-data' / 'retouch.db').resolve()}"
    )
    shown = {k: redact(v) for k, v in settings.items()}
    print(
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"phases at {args.clients} clients x {args.duration:.0f} s, warm-up {args.warmup:.0f} s; "
        f"workers {args.workers or 1}; settings {shown}\nmix (weights): "
        + ", ".join(f"{k} {v}" for k, v in MIX.items())
        + f"\n{load_average(busy_note=True)} (before)"
    )
    phases: list[Phase] = []
    books = Books()
    failure: str | None = None
    started = time.monotonic()
    with (
        soak_server(workdir, args, settings, account) as server,
        TreeSampler(server.pid) as sampler,
    ):
        print(f"server up in {time.monotonic() - started:.1f} s at {server.base_url}")
        try:
            books.start_balance = balance(server)
            warm = Phase("warm-up", max(args.clients))
            warm.started = time.monotonic()
            first = Client(server, ops, seed=args.seed, timeout=args.timeout)
            try:
                for op in ops.values():
                    warm.outcomes += first.run(op)
            finally:
                first.close()
            print(
                f"each operation once (loads the models): {time.monotonic() - warm.started:.1f} s"
            )
            if args.warmup > 0:
                run_phase(
                    warm,
                    server,
                    ops,
                    duration=args.warmup,
                    max_requests=args.max_requests,
                    seed=args.seed,
                    timeout=args.timeout,
                    deadline=deadline,
                    sampler=sampler,
                )
            phases.append(warm)
            for i, clients in enumerate(args.clients):
                if deadline.expired():
                    print(f"skipped the phase at {clients} clients: --max-seconds spent")
                    continue
                print(f"phase {i + 1}: {clients} clients for {args.duration:.0f} s...", flush=True)
                phases.append(
                    run_phase(
                        Phase(f"phase {i + 1}", clients),
                        server,
                        ops,
                        duration=args.duration,
                        max_requests=args.max_requests,
                        seed=args.seed + i + 1,
                        timeout=args.timeout,
                        deadline=deadline,
                        sampler=sampler,
                    )
                )
            time.sleep(2)  # let anything the clients gave up on finish and refund
            books.end_balance = balance(server)
            keep_books([o for p in phases for o in p.outcomes], books, database_url, account)
        except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        labels = dict(sampler.labels)
    for phase in phases:
        print_phase(phase, labels)
    measured = [p for p in phases if p.name != "warm-up"]
    print_run_memory(measured, sampler)
    print_ratios(measured)
    print_server_errors(phases, server.log)
    if failure:
        print(f"\nFAILED: {failure}")
        return 1
    print_books(books)
    verdicts(phases, books)
    print(f"\n{load_average()} (after); {deadline.elapsed:.0f} s in all")
    return 0 if books.balanced else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.max_seconds)
    install_stop_handlers(deadline)
    try:
        with tempfile.TemporaryDirectory(prefix="retouch-soak-") as tmp:
            return soak(args, deadline, Path(tmp))
    except KeyboardInterrupt:
        print("\ninterrupted: server stopped")
        return 130
    except HardStop as exc:
        print(f"\n{exc}: server stopped")
        return 1
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"\nFAILED: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
