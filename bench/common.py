"""Shared plumbing of the per-endpoint benchmarks (``upscale.py``, ``outpaint.py``,
``generate_background.py``): in-process timing with peak RSS, a ``retouch serve`` subprocess on
loopback, a bounded HTTP load runner, and the tables they print. ``remove_background.py`` uses its
server-process, RSS-sampling and load-phase helpers with a load runner of its own.

Conventions (the same as ``remove_background.py``): loopback only; every phase bounded by a count
and by a deadline (``--max-seconds``), with a watchdog that aborts a run which overstays it;
servers run in their own process group and are stopped however the script ends (normally, on an
error, Ctrl-C or SIGTERM); ratios are against a baseline measured in the same run; nothing
asserts on timings. Importing this module sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set),
as ``retouch serve`` does, so ncnn's OpenMP threads in this process behave like the server's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

import cv2
import httpx
import numpy as np
import psutil
from PIL import Image

# Before the benchmark scripts import retouch (first-party, so after this module), whose ncnn
# loads OpenMP: spinning idle threads would steal the core the measured thread runs on.
# Servers get the caller's environment (``clean_env``), so they do not inherit this default.
_OMP_DEFAULTED = "OMP_WAIT_POLICY" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

T = TypeVar("T")

SAMPLE_INTERVAL_S = 0.1
STARTUP_TIMEOUT_S = 180.0
# After --max-seconds no new work starts; a run still going this much later is aborted.
WATCHDOG_GRACE_S = 120.0
MIB = 2**20


# --- time limits -----------------------------------------------------------------------------


class HardStop(BaseException):
    """Raised by the watchdog: unwinds through every ``finally`` (which stops the server)."""


class Deadline:
    """The whole script's time budget: no new unit of work starts once it has passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.hit = False  # set by whoever skipped work because of it

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        if time.monotonic() - self.start > self.seconds:
            self.hit = True
            return True
        return False


def install_stop_handlers(deadline: Deadline) -> None:
    """SIGTERM behaves like Ctrl-C; SIGALRM fires ``WATCHDOG_GRACE_S`` after the deadline."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise HardStop(f"watchdog: still running {WATCHDOG_GRACE_S:.0f} s after --max-seconds")

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, math.ceil(deadline.seconds + WATCHDOG_GRACE_S)))


# --- images ----------------------------------------------------------------------------------


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded image bytes as uint8 HxWx3 RGB (what the server decodes a plain JPEG to)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images over all channels."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


# --- in-process measurement ------------------------------------------------------------------


class PeakRss:
    """This process's peak RSS over a stretch of code.

    On Linux the kernel's high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs``,
    which catches even a millisecond-long spike; elsewhere a thread samples RSS every 10 ms.
    """

    def __init__(self) -> None:
        self._exact = self._try_reset()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.method = "kernel high-water mark (VmHWM)" if self._exact else "sampled every 10 ms"

    @staticmethod
    def _try_reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _hwm() -> int:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
        return int(match.group(1)) * 1024 if match else 0

    @staticmethod
    def current() -> int:
        return int(psutil.Process().memory_info().rss)

    def __enter__(self) -> PeakRss:
        if self._exact:
            self._try_reset()
        else:
            self._peak = self.current()
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self.current())

    def __exit__(self, *exc: object) -> None:
        if self._exact:
            self._peak = self._hwm()
        else:
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=1)
            self._peak = max(self._peak, self.current())

    @property
    def peak(self) -> int:
        return self._peak


@dataclass
class Timing:
    """Repeated runs of one in-process case."""

    size: int
    label: str
    walls: list[float] = field(default_factory=list)  # seconds
    cpus: list[float] = field(default_factory=list)  # process CPU seconds (all threads)
    start_rss: int = 0
    peak_rss: int = 0
    stopped_by_time: bool = False

    @property
    def median(self) -> float:
        return float(np.median(self.walls)) if self.walls else float("nan")

    @property
    def best(self) -> float:
        return min(self.walls) if self.walls else float("nan")

    @property
    def cpu(self) -> float:
        return float(np.median(self.cpus)) if self.cpus else float("nan")


def time_op(
    size: int,
    label: str,
    fn: Callable[[], T],
    *,
    repeats: int,
    deadline: Deadline,
    peak: PeakRss,
) -> tuple[Timing, T | None]:
    """``fn`` run ``repeats`` times (fewer if the deadline passes; none if it already has), with
    the wall and CPU time of each run and the process's peak RSS over all of them. The last
    result is returned for quality checks."""
    timing = Timing(size=size, label=label, start_rss=PeakRss.current())
    result: T | None = None
    with peak:
        for _ in range(repeats):
            if deadline.expired():
                timing.stopped_by_time = True
                break
            cpu, wall = time.process_time(), time.perf_counter()
            result = fn()
            timing.walls.append(time.perf_counter() - wall)
            timing.cpus.append(time.process_time() - cpu)
    timing.peak_rss = peak.peak
    return timing, result


def print_timings(rows: Sequence[tuple[Timing, Timing | None]], repeats: int, method: str) -> None:
    """One line per case; the second element is the baseline its ratio is against (None marks
    a baseline itself)."""
    print(
        f"\nIn-process, median / min of {repeats} (1 engine thread; OpenCV pool "
        f"{cv2.getNumThreads()} threads); peak RSS of this process during the case "
        f"({method}), and its rise over the RSS before it"
    )
    print(
        f"  {'size':>5} {'case':<34} {'median ms':>10} {'min ms':>9} {'CPU ms':>9} "
        f"{'vs baseline':>12} {'peak RSS MiB':>13} {'(+MiB)':>7}"
    )
    for timing, baseline in rows:
        if not timing.walls:
            print(f"  {timing.size:>5} {timing.label:<34} skipped (--max-seconds)")
            continue
        if baseline is None:
            ratio = "baseline"
        elif baseline.walls:
            ratio = f"{timing.median / baseline.median:.1f}x"
        else:
            ratio = "-"
        note = f"  (only {len(timing.walls)} runs: --max-seconds)" if timing.stopped_by_time else ""
        print(
            f"  {timing.size:>5} {timing.label:<34} {ms(timing.median):>10} {ms(timing.best):>9} "
            f"{ms(timing.cpu):>9} {ratio:>12} {timing.peak_rss / MIB:>13.0f} "
            f"{(timing.peak_rss - timing.start_rss) / MIB:>+7.0f}{note}"
        )


def ms(seconds: float) -> str:
    """Milliseconds with three significant digits (0.734, 12.3, 1970)."""
    if math.isnan(seconds):
        return "-"
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running ``retouch serve`` and how to call it."""

    base_url: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any ``RETOUCH_*`` setting (nor the ``OMP_WAIT_POLICY``
    this module defaulted), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RETOUCH_") and not (k == "OMP_WAIT_POLICY" and _OMP_DEFAULTED)
    }
    env.update(extra)
    return env


def retouch_command(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    sibling = Path(sys.executable).parent / "retouch"
    if sibling.is_file():
        return [str(sibling)]
    found = shutil.which("retouch")
    return [found] if found else [sys.executable, "-m", "retouch"]


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, SIGKILL it if it has not exited within 15 s."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def retouch_server(
    workdir: Path,
    *,
    command: Sequence[str],
    settings: dict[str, str],
    serve_args: Sequence[str] = (),
    account: str = "bench",
) -> Iterator[Server]:
    """``retouch serve`` (plus ``serve_args``, e.g. ``--workers 2``) on a free loopback port with
    a fresh data dir (``workdir/retouch-data``) and an account named ``account`` with ample
    credits and rate limit; its process group is stopped however the block ends."""
    data_dir = workdir / "retouch-data"
    data_dir.mkdir()
    env = clean_env(RETOUCH_DATA_DIR=str(data_dir), OMP_WAIT_POLICY="PASSIVE", **settings)
    key = create_account(command, env, name=account)
    port = free_port()
    log = workdir / "retouch.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        server = Server(f"http://127.0.0.1:{port}", key, process, log)
        _wait_ready(server)
        yield server
    finally:
        stop_process_group(process)


def create_account(command: Sequence[str], env: dict[str, str], *, name: str = "bench") -> str:
    """The API key of a new account with ample credits and rate limit, in ``env``'s data dir."""
    created = subprocess.run(
        [*command, "accounts", "create", name, "--credits", "1000000", "--rate-limit", "100000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    key = re.search(r"sk_[A-Za-z0-9_-]{43}", created.stdout)
    if created.returncode != 0 or key is None:
        raise RuntimeError(f"retouch accounts create failed:\n{created.stdout}{created.stderr}")
    return key.group()


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if not server.alive():
            raise RuntimeError(f"retouch serve exited:\n{server.log_tail()}")
        try:
            httpx.get(f"{server.base_url}/v1/credits", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"retouch serve did not start in {STARTUP_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(0.2)


class RssSampler:
    """Samples the RSS of a process plus all its descendants every 100 ms, in a thread."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._lock = threading.Lock()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _procs(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return [self._root, *self._root.children(recursive=True)]
        return []

    def tree_rss(self) -> int:
        total = 0
        for proc in self._procs():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        return total

    def tree_cpu(self) -> float:
        """User plus system CPU seconds used so far by the process and its descendants."""
        total = 0.0
        for proc in self._procs():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            rss = self.tree_rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def __enter__(self) -> RssSampler:
        self._peak = self.tree_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def reset_peak(self) -> None:
        rss = self.tree_rss()
        with self._lock:
            self._peak = rss

    @property
    def peak(self) -> int:
        with self._lock:
            return self._peak


# --- HTTP load -------------------------------------------------------------------------------


def multipart(files: dict[str, tuple[str, bytes, str]], data: dict[str, str]) -> tuple[bytes, str]:
    """A multipart body encoded once by httpx, with its Content-Type (boundary included)."""
    request = httpx.Request("POST", "http://bench.invalid/", files=files, data=data)
    return request.read(), request.headers["content-type"]


@dataclass(frozen=True)
class HttpCase:
    """One request, sent repeatedly: ``check`` raises RuntimeError on a wrong response body."""

    size: int
    label: str
    path: str
    body: bytes
    content_type: str
    check: Callable[[httpx.Response], None]
    in_process: Timing | None  # the same work in-process, for the overhead ratio


def expect_image(media_type: str, size: tuple[int, int]) -> Callable[[httpx.Response], None]:
    """A check that the response is an image of ``media_type`` and ``size`` (width, height)."""

    def check(response: httpx.Response) -> None:
        got = response.headers.get("content-type", "")
        if got != media_type:
            raise RuntimeError(f"expected {media_type}, got {got}")
        with Image.open(io.BytesIO(response.content)) as image:
            if image.size != size:
                raise RuntimeError(f"expected {size[0]}x{size[1]}, got {image.size}")

    return check


@dataclass
class LoadRun:
    """The outcome of one load phase."""

    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    peak_rss: int = 0
    cpu_seconds: float = 0.0  # the server tree's, over the whole phase
    stopped_by_time: bool = False

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_per_image(self) -> float:
        return self.cpu_seconds / self.ok if self.ok else float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


@dataclass(kw_only=True)
class Run(LoadRun):
    """The outcome of one load phase of one case."""

    case: HttpCase


def call(client: httpx.Client, server: Server, case: HttpCase) -> None:
    response = client.post(
        server.base_url + case.path,
        content=case.body,
        headers={"X-API-KEY": server.key, "Accept": "image/*", "Content-Type": case.content_type},
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    case.check(response)


def run_clients(threads: Sequence[threading.Thread], *, give_up: float = math.inf) -> int:
    """Start the load's client threads and wait for them, until ``give_up`` (a monotonic time)
    at the latest; how many are still running then. Joined in short slices, so Ctrl-C and the
    watchdog reach the main thread promptly."""
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive() and time.monotonic() < give_up:
            thread.join(timeout=0.5)
    return sum(thread.is_alive() for thread in threads)


def load(
    server: Server,
    case: HttpCase,
    *,
    requests: int,
    clients: int,
    deadline: Deadline,
    timeout: float,
    sampler: RssSampler,
) -> Run:
    """``requests`` calls from ``clients`` threads, each with its own keep-alive connection; no
    new call starts once the deadline has passed."""
    run = Run(case=case, clients=clients)
    lock = threading.Lock()
    issued = 0
    start = time.perf_counter()
    finished = start

    def worker() -> None:
        nonlocal issued, finished
        with httpx.Client(timeout=timeout) as client:
            while True:
                with lock:
                    if issued >= requests:
                        return
                    if deadline.expired():
                        run.stopped_by_time = True
                        return
                    issued += 1
                began = time.perf_counter()
                try:
                    call(client, server, case)
                    error = None
                except (httpx.HTTPError, RuntimeError, OSError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                ended = time.perf_counter()
                with lock:
                    finished = max(finished, ended)
                    if error is None:
                        run.latencies.append(ended - began)
                    else:
                        run.errors.append(error)

    sampler.reset_peak()
    cpu_before = sampler.tree_cpu()
    run_clients([threading.Thread(target=worker, daemon=True) for _ in range(clients)])
    run.wall = finished - start
    run.peak_rss = sampler.peak
    run.cpu_seconds = sampler.tree_cpu() - cpu_before
    if not server.alive():
        raise RuntimeError(f"retouch serve died:\n{server.log_tail()}")
    return run


@dataclass
class HttpReport:
    runs: list[Run] = field(default_factory=list)
    idle_rss: int = 0  # server tree after start-up, before any request
    end_rss: int = 0  # server tree a second after the last request: what it kept
    warmup: str = ""
    failure: str | None = None
    skipped: list[str] = field(default_factory=list)


def run_http(
    cases: Sequence[HttpCase], args: argparse.Namespace, deadline: Deadline, workdir: Path
) -> HttpReport:
    """Start the server, send one untimed warm-up (the first case), then each case
    ``--http-requests`` times at each ``--concurrency`` level."""
    report = HttpReport()
    if deadline.expired():
        report.skipped.append("everything: --max-seconds already spent")
        return report
    command = retouch_command(args.retouch)
    try:
        with (
            retouch_server(workdir, command=command, settings=args.retouch_env) as server,
            RssSampler(server.pid) as sampler,
        ):
            report.idle_rss = sampler.tree_rss()
            began = time.perf_counter()
            with httpx.Client(timeout=args.timeout) as client:
                call(client, server, cases[0])
            report.warmup = (
                f"{cases[0].size} {cases[0].label}: {ms(time.perf_counter() - began)} ms"
            )
            for case in cases:
                for clients in args.concurrency:
                    if deadline.expired():
                        report.skipped.append(f"{case.size} {case.label} at {clients} clients")
                        continue
                    print(f"[http] {case.size} {case.label}: {args.http_requests} at {clients}...")
                    report.runs.append(
                        load(
                            server,
                            case,
                            requests=args.http_requests,
                            clients=clients,
                            deadline=deadline,
                            timeout=args.timeout,
                            sampler=sampler,
                        )
                    )
            time.sleep(1)
            report.end_rss = sampler.tree_rss()
    except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as exc:
        report.failure = f"{type(exc).__name__}: {exc}"
    return report


def print_http(report: HttpReport) -> int:
    """The report as a table; the exit status it calls for (1 when the server failed)."""
    print(
        "\nThrough HTTP: retouch serve (defaults, OMP_WAIT_POLICY=PASSIVE), multipart `image`, "
        "Accept: image/*;\nlatency in ms; peak RSS = server process tree, sampled every "
        f"{SAMPLE_INTERVAL_S * 1000:.0f} ms; CPU s/img = server tree CPU per image;\n"
        "HTTP/in-proc = HTTP p50 / in-process median (decode, encode, transfer and bookkeeping "
        "included)"
    )
    if report.idle_rss:
        print(
            f"  server RSS after start-up {report.idle_rss / MIB:.0f} MiB; warm-up {report.warmup}"
        )
    if report.runs:
        print(
            f"  {'size':>5} {'case':<22} {'clients':>7} {'ok':>3} {'err':>3} {'p50':>7} "
            f"{'p95':>7} {'img/s':>6} {'peak RSS MiB':>12} {'CPU s/img':>9} {'HTTP/in-proc':>12}"
        )
    for run in report.runs:
        case = run.case
        inproc = case.in_process.median if case.in_process and case.in_process.walls else math.nan
        overhead = f"{run.percentile(50) / inproc:.2f}x" if run.clients == 1 and inproc else ""
        note = "  (stopped by --max-seconds)" if run.stopped_by_time else ""
        print(
            f"  {case.size:>5} {case.label:<22} {run.clients:>7} {run.ok:>3} {len(run.errors):>3} "
            f"{ms(run.percentile(50)):>7} {ms(run.percentile(95)):>7} {run.throughput:>6.2f} "
            f"{run.peak_rss / MIB:>12.0f} {run.cpu_per_image:>9.2f} {overhead:>12}{note}"
        )
        for error in sorted(set(run.errors))[:2]:
            print(f"      error: {error}")
    if report.end_rss:
        print(f"  server RSS 1 s after the last request {report.end_rss / MIB:.0f} MiB")
    for skipped in report.skipped:
        print(f"  skipped (--max-seconds): {skipped}")
    if report.failure:
        print(f"  FAILED: {report.failure}")
    return 1 if report.failure or any(run.errors for run in report.runs) else 0


# --- command line and context ----------------------------------------------------------------


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--retouch-env wants NAME=VALUE, got {pair!r}")
        env[key] = value
    return env


def int_list(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    max_seconds: float,
    repeats: int = 3,
    http_requests: int = 4,
) -> None:
    parser.add_argument(
        "--repeats", type=int, default=repeats, help="in-process runs per case (%(default)s)"
    )
    parser.add_argument(
        "--sizes", type=int_list, default=[512, 1024], help="square input sides (512,1024)"
    )
    parser.add_argument("--skip-http", action="store_true", help="in-process only")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=max_seconds,
        help="no new work starts after this many seconds in all; a watchdog aborts the run "
        f"{WATCHDOG_GRACE_S:.0f} s later (default: %(default)s)",
    )
    parser.add_argument(
        "--http-requests",
        type=int,
        default=http_requests,
        help="requests per case and client count (%(default)s)",
    )
    parser.add_argument(
        "--concurrency", type=int_list, default=[1, 2], help="HTTP client counts (1,2)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="per-request timeout, s (120)")
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


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.repeats < 1 or args.http_requests < 1 or min(args.concurrency, default=0) < 1:
        parser.error("--repeats, --http-requests and --concurrency must be >= 1")
    if not args.sizes or args.max_seconds <= 0:
        parser.error("--sizes must name at least one size and --max-seconds be > 0")
    args.retouch_env = parse_env(args.retouch_env)


def load_average(*, busy_note: bool = False) -> str:
    """Other work on the machine skews wall-clock numbers; say how much there was (with
    ``busy_note``, also say so when the 1-minute average is over 0.5)."""
    one, five, _ = os.getloadavg()
    busy = busy_note and one > 0.5
    note = "  (busy machine: wall-clock numbers are unreliable; CPU s/img is not)" if busy else ""
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min){note}"


def print_header(title: str, args: argparse.Namespace) -> None:
    http = (
        "HTTP skipped"
        if args.skip_http
        else f"HTTP {args.http_requests} requests per case at {args.concurrency} clients"
    )
    print(
        f"{title}\n{platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({psutil.cpu_count(logical=False)} physical); "
        f"sizes {args.sizes}; {args.repeats} repeats; {http}; "
        f"--max-seconds {args.max_seconds:.0f}\n{load_average()} (before)"
    )


def print_footer(deadline: Deadline) -> None:
    stopped = "; --max-seconds cut work short" if deadline.hit else ""
    print(f"\n{load_average()} (after); {deadline.elapsed:.0f} s in all{stopped}")
