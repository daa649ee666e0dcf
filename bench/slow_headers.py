"""Slow-header (slow-loris) connections against ``retouch serve``: are they dropped within
``RETOUCH_HEADER_TIMEOUT_SECONDS``, and does everyone else stay served meanwhile?

What it does: starts ``retouch serve`` on loopback (fresh data dir) with the header timeout given
by ``--timeout``, opens ``--connections`` connections at once (default 200) that each send a
request line and then one header byte every ``--interval`` seconds, never finishing, plus a
tenth as many that connect and send nothing. Meanwhile a prober makes ordinary requests (a fresh
connection each, alternating ``/healthz`` and an authenticated ``/v1/credits``) every 50 ms.

It prints when the server closed each slow connection (seconds after it opened: min, median,
max; how many within the timeout plus one second; how many it never closed before the run
ended at twice the timeout plus five seconds) and the probes' latency (p50, p95, max) and
failures. The bound holds when every slow connection is closed close to the timeout and the
probes' maximum stays under a second. Nothing here asserts on timings. Run from the repository
root with the project's virtualenv::

    .venv/bin/python bench/slow_headers.py
    .venv/bin/python bench/slow_headers.py --connections 500 --timeout 10
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from common import (
    Deadline,
    HardStop,
    Server,
    install_stop_handlers,
    load_average,
    retouch_command,
    retouch_server,
)

REQUEST_LINE = b"GET /v1/credits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
HEADER = b"X-Slow: " + b"a" * 10_000
BASELINE_S = 3.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200, help="slow ones (%(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="RETOUCH_HEADER_TIMEOUT_SECONDS (%(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between header bytes (%(default)s)"
    )
    parser.add_argument("--retouch", help="the retouch command (default: this venv's)")
    parser.add_argument("--max-seconds", type=float, default=300, help="(%(default)s)")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.timeout <= 0 or args.interval <= 0:
        parser.error("--connections, --timeout and --interval must be positive")
    return args


class Probe(threading.Thread):
    """Ordinary requests, one fresh connection each, until told to stop."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.latencies: list[tuple[float, float]] = []  # (when asked, how long it took)
        self.failures: list[str] = []

    def run(self) -> None:
        paths = [("/healthz", {}), ("/v1/credits", {"X-API-KEY": self.server.key})]
        turn = 0
        # No keep-alive: each request opens its own connection, as a new client would.
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.server.base_url, timeout=10, limits=fresh) as http:
            while not self.stop.is_set():
                path, headers = paths[turn % 2]
                turn += 1
                asked = time.monotonic()
                try:
                    status = http.get(path, headers=headers).status_code
                    if status != 200:
                        self.failures.append(f"{path}: {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{path}: {exc!r}")
                self.latencies.append((asked, time.monotonic() - asked))
                self.stop.wait(0.05)


def slow_loris(server: Server, args: argparse.Namespace) -> tuple[list[float], int, int]:
    """Close times of the slow connections (seconds after each opened), how many the server
    never closed, and how many could not even be opened."""
    address = urlsplit(server.base_url)
    silent = max(1, args.connections // 10)
    opened: dict[socket.socket, float] = {}
    sent: dict[socket.socket, int] = {}
    refused = 0
    for index in range(args.connections + silent):
        try:
            sock = socket.create_connection((address.hostname, address.port), timeout=5)
        except OSError:
            refused += 1
            continue
        sock.setblocking(False)
        opened[sock] = time.monotonic()
        if index < args.connections:
            sock.send(REQUEST_LINE)
            sent[sock] = 0
    closed: list[float] = []
    end = time.monotonic() + 2 * args.timeout + 5
    next_byte = time.monotonic() + args.interval
    while opened and time.monotonic() < end:
        for sock in select.select(list(opened), [], [], 0.05)[0]:
            try:
                if sock.recv(65536):
                    continue  # the 408; the close follows
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                pass
            closed.append(time.monotonic() - opened.pop(sock))
            sent.pop(sock, None)
            sock.close()
        if time.monotonic() >= next_byte:
            next_byte += args.interval
            for sock, count in list(sent.items()):
                try:
                    sock.send(HEADER[count : count + 1])
                    sent[sock] = count + 1
                except OSError:
                    sent.pop(sock)  # closed: the next select sees it
    for sock in opened:
        sock.close()
    return closed, len(opened), refused


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.max_seconds)
    install_stop_handlers(deadline)
    print(
        f"slow headers: {args.connections} trickling (+{max(1, args.connections // 10)} silent)"
        f" connections, a byte every {args.interval:g} s, header timeout {args.timeout:g} s\n"
        f"{load_average()} (before)"
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="retouch-bench-") as tmp,
            retouch_server(
                Path(tmp),
                command=retouch_command(args.retouch),
                settings={"RETOUCH_HEADER_TIMEOUT_SECONDS": str(args.timeout)},
            ) as server,
        ):
            probe = Probe(server)
            probe.start()
            time.sleep(BASELINE_S)  # before the slow connections arrive
            started = time.monotonic()
            closed, never, refused = slow_loris(server, args)
            ended = time.monotonic()
            probe.stop.set()
            probe.join()
            alive = server.alive()
    except (KeyboardInterrupt, HardStop) as exc:
        print(f"stopped: {exc!r}", file=sys.stderr)
        return 130
    within = sum(1 for at in closed if at <= args.timeout + 1)
    print(f"\nslow connections: {len(closed)} closed by the server, {never} never closed")
    if refused:
        print(f"  {refused} could not be opened")
    if closed:
        print(
            f"  closed after (s): min {min(closed):.2f}, median {statistics.median(closed):.2f},"
            f" max {max(closed):.2f}; within timeout + 1 s: {within}/{len(closed) + never}"
        )
    before = [took for asked, took in probe.latencies if asked < started]
    lat = [took for asked, took in probe.latencies if started <= asked <= ended]
    for label, values in (("before", before), ("meanwhile", lat)):
        print(
            f"ordinary requests {label}: {len(values)}; latency (ms) "
            f"p50 {percentile(values, 0.5) * 1000:.0f}, "
            f"p95 {percentile(values, 0.95) * 1000:.0f}, max {max(values) * 1000:.0f}"
        )
    print(f"  {len(probe.failures)} failed")
    for failure in probe.failures[:5]:
        print(f"  {failure}")
    held = never == 0 and within == len(closed) and max(lat) < 1 and not probe.failures
    print(
        f"\nbound {'held' if held else 'NOT held'}: every slow connection dropped within the "
        f"timeout + 1 s, ordinary requests under 1 s; server {'alive' if alive else 'DEAD'}"
    )
    print(f"{load_average()} (after); {deadline.elapsed:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
