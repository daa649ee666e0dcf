"""The long fuzzing run: the properties of tests/ops/test_codec_fuzz.py and
tests/api/test_parse_fuzz.py (shared in tests/utils/fuzzing.py) with many more examples.

Targets:

* ``codec``: decode_image on corrupted JPEG/PNG/WebP files, arbitrary bytes and oversized
  headers; pixels within the limits or a 400, each call under ``SECONDS_PER_DECODE``, the
  process's peak RSS under a ceiling;
* ``validate``: the request models on random JSON objects; a spec 400 or a model that
  fingerprints;
* ``json``, ``multipart``, ``content-type``: POSTs to the image endpoints of an in-process server
  on 127.0.0.1 (fresh SQLite database, the real default models); below 500, the envelope with a
  documented code, and the balance unchanged unless the answer was a 2xx that says what it
  charged.

Loopback only: the image fetcher and webhook delivery are replaced, and any other outgoing
connection is refused before it is made. Each target runs Hypothesis in batches of ``--batch``
examples, each batch with its own seed (printed with any failure, so it can be replayed) until
``--examples`` have run or its share of ``--seconds`` is spent. A watchdog ends the process (exit
status 3) if one example hangs past ``--hang-seconds`` or the run overstays its budget by that
much. Exit status 1 if any property failed. Run from the repository root::

    .venv/bin/python bench/fuzz.py --seconds 300
    .venv/bin/python bench/fuzz.py --targets codec --examples 100000 --seconds 1800
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `retouch serve` does, before ncnn loads
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.utils

import httpcore
import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import retouch.api.inputs
import retouch.jobs.runner
from retouch.api.inputs import validate
from retouch.app import create_app
from retouch.app_state import Engines, Services
from retouch.billing import ledger
from retouch.billing.idempotency import fingerprint
from retouch.config import Settings
from retouch.db import migrate
from retouch.errors import InvalidParameter, MissingParameter
from tests.utils import fuzzing
from tests.utils.factories import TestAccount, make_account
from tests.utils.server import LiveServer

TARGETS = ("codec", "validate", "json", "multipart", "content-type")
HTTP_TARGETS = {
    "json": fuzzing.json_requests(),
    "multipart": fuzzing.multipart_requests(),
    "content-type": fuzzing.odd_content_type_requests(),
}


@dataclass
class Tally:
    """What one target saw."""

    examples: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Watchdog:
    """Ends the process if one example runs too long: a hang inside C code never returns to a
    signal handler, so only another thread can notice it."""

    def __init__(self, hang_seconds: float, deadline: float) -> None:
        self.hang_seconds = hang_seconds
        self.deadline = deadline
        self._current: tuple[float, Callable[[], str]] | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    @contextlib.contextmanager
    def example(self, describe: Callable[[], str]) -> Iterator[None]:
        self._current = (time.monotonic(), describe)
        try:
            yield
        finally:
            self._current = None

    def _watch(self) -> None:
        while True:
            time.sleep(1)
            now = time.monotonic()
            current = self._current
            if current is not None and now - current[0] > self.hang_seconds:
                print(f"\nHANG: one example ran over {self.hang_seconds:.0f} s:", flush=True)
                print(current[1]()[:4000], flush=True)
                os._exit(3)
            if now > self.deadline + self.hang_seconds:
                print("\nOVERRAN: the run is past its budget; stopping", flush=True)
                os._exit(3)


def run_target(
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], str],
    *,
    examples: int,
    seconds: float,
    batch: int,
    base_seed: int,
    watchdog: Watchdog,
) -> Tally:
    """Batches of Hypothesis runs of ``check`` until ``examples`` or ``seconds`` is reached."""
    tally = Tally()
    started = time.monotonic()
    number = 0
    while tally.examples < examples and time.monotonic() - started < seconds:
        batch_seed = base_seed + number
        number += 1
        # Sized from the rate so far, so the last batch ends near the time budget.
        elapsed = time.monotonic() - started
        affordable = tally.examples / elapsed * (seconds - elapsed) if tally.examples else 50
        remaining = max(1, min(batch, examples - tally.examples, int(affordable)))

        def prop(value: Any) -> None:
            tally.examples += 1
            with watchdog.example(lambda value=value: repr(value)):
                tally.outcomes[check(value)] += 1

        runner = seed(batch_seed)(
            settings(
                max_examples=remaining,
                deadline=None,
                database=None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )(given(strategy)(prop))
        )
        try:
            runner()
        except Exception as exc:  # a property failed; Hypothesis has shrunk it
            notes = "\n".join(getattr(exc, "__notes__", []))
            tail = "".join(traceback.format_exception_only(exc)).strip()
            tally.failures.append(f"[seed {batch_seed}] {tail}\n{notes}"[:4000])
            tally.outcomes["FAILED"] += 1
    tally.seconds = time.monotonic() - started
    return tally


def check_codec(rss_ceiling_mib: float) -> Callable[[bytes], str]:
    def check(data: bytes) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = fuzzing.check_decode(data, fuzzing.CODEC_LIMITS, rss_ceiling_mib)
        for warning in caught:
            assert warning.category is UserWarning and "TiffImagePlugin" in warning.filename, (
                f"{warning.category.__name__}: {warning.message} ({warning.filename})"
            )
        return outcome + (" (+Pillow EXIF warning)" if caught else "")

    return check


def check_validate(case: tuple[type[BaseModel], dict[str, Any]]) -> str:
    model, fields = case
    try:
        params = validate(model, fields)
    except (InvalidParameter, MissingParameter) as exc:
        assert exc.status == 400 and exc.message
        return exc.error_code
    fingerprint(endpoint="fuzz", params=params.model_dump(mode="json"), images={})
    return "valid"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Nothing is fetched or delivered, and no connection leaves 127.0.0.1."""

    async def no_fetching(url: str, **_kwargs: object) -> bytes:
        raise InvalidParameter(f"image_url could not be fetched: {url!r} (fetching is off)")

    async def no_delivery(*_args: object, **_kwargs: object) -> bool:
        return False

    connect = httpcore.AnyIOBackend.connect_tcp

    async def guarded(
        self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"fuzz run refused a connection to {host}")
        return await connect(self, host, port, *args, **kwargs)

    saved = (retouch.api.inputs.fetch_url, retouch.jobs.runner.deliver)
    retouch.api.inputs.fetch_url = no_fetching  # type: ignore[assignment]
    retouch.jobs.runner.deliver = no_delivery  # type: ignore[assignment]
    httpcore.AnyIOBackend.connect_tcp = guarded  # type: ignore[method-assign]
    try:
        yield
    finally:
        retouch.api.inputs.fetch_url, retouch.jobs.runner.deliver = saved
        httpcore.AnyIOBackend.connect_tcp = connect  # type: ignore[method-assign]


@contextlib.contextmanager
def live_server() -> Iterator[tuple[httpx.Client, Services, TestAccount]]:
    with tempfile.TemporaryDirectory(prefix="retouch-fuzz-") as tmp, loopback_only():
        url = f"sqlite:///{Path(tmp) / 'retouch.db'}"
        migrate.upgrade(url)
        app_settings = Settings(data_dir=Path(tmp) / "data", database_url=url)
        services = Services.create(app_settings, engines=Engines.load(Settings()))
        try:
            account = make_account(services, credits=10**9, rate_limit=10**9)
            with (
                LiveServer.start(create_app(app_settings, services)) as server,
                httpx.Client(base_url=server.url, timeout=60) as client,
            ):
                yield client, services, account
        finally:
            services.close()


def check_http(
    client: httpx.Client, services: Services, account: TestAccount
) -> Callable[[fuzzing.FuzzRequest], str]:
    def balance() -> int:
        with services.sessions() as session:
            value = ledger.balance(session, account_id=account.id)
            assert value == ledger.ledger_sum(session, account_id=account.id)
            return value

    def check(request: fuzzing.FuzzRequest) -> str:
        before = balance()
        response = request.send(client, account.key)
        fuzzing.check_response(response)
        charged = int(response.headers["X-Credits-Charged"]) if response.is_success else 0
        assert balance() == before - charged, (response.status_code, response.text[:300])
        code = response.json().get("error_code", "") if response.status_code >= 400 else ""
        return f"{response.status_code} {code}".strip()

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--examples", type=int, default=20_000, help="per target")
    parser.add_argument("--seconds", type=float, default=600, help="the whole run's budget")
    parser.add_argument("--batch", type=int, default=1000, help="examples per Hypothesis run")
    parser.add_argument("--seed", type=int, default=0, help="the first batch's seed")
    parser.add_argument("--hang-seconds", type=float, default=60)
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown or args.examples < 1 or args.seconds <= 0 or args.batch < 1:
        parser.error(f"unknown targets {sorted(unknown)}" if unknown else "bad limits")

    # As the test suite runs (filterwarnings = error), less what fuzzing.IGNORED_WARNINGS lists.
    warnings.simplefilter("error")
    for message, category, module in fuzzing.IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message, category, module)
    # python-multipart logs each malformed body it is fed; thousands of lines would bury the report.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)

    started = time.monotonic()
    watchdog = Watchdog(args.hang_seconds, deadline=started + args.seconds)
    share = args.seconds / len(targets)
    print(
        f"fuzz: targets {', '.join(targets)}; up to {args.examples} examples each, "
        f"{share:.0f} s each; seed {args.seed}",
        flush=True,
    )
    tallies: dict[str, Tally] = {}
    common: dict[str, Any] = {
        "examples": args.examples,
        "batch": args.batch,
        "base_seed": args.seed,
        "watchdog": watchdog,
    }

    def run(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], str]) -> None:
        # Later targets inherit what earlier ones left unspent.
        left = args.seconds - (time.monotonic() - started)
        seconds = left / (len(targets) - len(tallies))
        tallies[name] = run_target(strategy, check, seconds=seconds, **common)
        report(name, tallies[name])

    if "codec" in targets:
        ceiling = fuzzing.peak_rss_mib() + fuzzing.RSS_HEADROOM_MIB
        codec_inputs = st.one_of(
            fuzzing.mutated_files(), fuzzing.arbitrary_bytes, fuzzing.oversized_headers()
        )
        run("codec", codec_inputs, check_codec(ceiling))
    if "validate" in targets:
        run(
            "validate",
            st.tuples(st.sampled_from(fuzzing.REQUEST_MODELS), fuzzing.json_fields()),
            check_validate,
        )
    http = [t for t in targets if t in HTTP_TARGETS]
    if http:
        print("starting the server (loading models)...", flush=True)
        with live_server() as (client, services, account):
            for name in http:
                run(name, HTTP_TARGETS[name], check_http(client, services, account))

    total = time.monotonic() - started
    failures = sum(len(t.failures) for t in tallies.values())
    examples = sum(t.examples for t in tallies.values())
    print(f"\nfuzz: {examples} examples, {failures} failures, {total:.0f} s", flush=True)
    return 1 if failures else 0


def report(name: str, tally: Tally) -> None:
    rate = tally.examples / tally.seconds if tally.seconds else 0
    print(
        f"\n== {name}: {tally.examples} examples in {tally.seconds:.1f} s ({rate:.0f}/s), "
        f"{len(tally.failures)} failures",
        flush=True,
    )
    for outcome, count in tally.outcomes.most_common(12):
        print(f"  {count:7d}  {outcome}")
    for failure in tally.failures:
        print(f"  FAILURE {failure}")


if __name__ == "__main__":
    sys.exit(main())
