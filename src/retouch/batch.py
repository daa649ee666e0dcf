"""Many image files through one operation, for the ``retouch remove-background`` (…) commands.

Each input becomes ``<stem>.<ext>`` in the output folder (files found by walking a directory keep
their sub-folders), with the extension of what the endpoint answered. An input whose output
already exists, under any extension the endpoint may answer, counts as done and is skipped unless
``overwrite`` is set; outputs are written to a temporary file and renamed, so an interrupted run
never leaves a partial image that the next run would take for a finished one.

The work runs in-process on the same operations as the API's routes (no database, no credits),
or against a server through ``RetouchClient``, which retries and deduplicates for us.
"""

from __future__ import annotations

import glob
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from retouch import processing
from retouch.app_state import Engines
from retouch.client import RetouchAPIError, RetouchClient
from retouch.client._wire import validate
from retouch.client.errors import ParameterValidationError
from retouch.config import Settings
from retouch.errors import RetouchError
from retouch.pipeline import Output
from retouch.schemas import (
    GenerateBackgroundRequest,
    OutpaintRequest,
    RemoveBackgroundRequest,
    RequestModel,
    UpscaleRequest,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}
_GLOB = re.compile(r"[*?[]")

Status = Literal["ok", "skipped", "failed"]
Produce = Callable[[Path], Output]


# The four operations, as the routes run them; ``params`` is the route's validated request model.


@dataclass(frozen=True)
class Operation:
    model: type[RequestModel]
    client_method: str
    local: Callable[[Any, bytes, Engines, Settings], Output]
    # What the endpoint may answer for these parameters: any of them on disk means "done".
    extensions: Callable[[Any], tuple[str, ...]]


OPERATIONS: dict[str, Operation] = {
    "remove-background": Operation(
        RemoveBackgroundRequest,
        "remove_background",
        processing.remove_background,
        lambda _: ("png",),
    ),
    # JPEG, or PNG for an input with alpha: known only once the input is decoded.
    "upscale": Operation(UpscaleRequest, "upscale", processing.upscale, lambda _: ("jpg", "png")),
    "outpaint": Operation(
        OutpaintRequest,
        "outpaint",
        processing.outpaint,
        lambda params: ("png",) if params.output_format == "png" else ("jpg",),
    ),
    "generate-background": Operation(
        GenerateBackgroundRequest,
        "generate_background",
        processing.generate_background,
        lambda _: ("jpg",),
    ),
}


class UsageError(Exception):
    """The command line can't be run as given (an invalid option, a missing path)."""


@dataclass(frozen=True)
class Item:
    source: Path
    target: Path  # the output's path without its extension

    def output(self, extension: str) -> Path:
        # Not with_suffix: a stem such as "shot.v2" has a dot of its own.
        return self.target.with_name(f"{self.target.name}.{extension}")


@dataclass(frozen=True)
class Outcome:
    item: Item
    status: Status
    detail: str  # the output's path, or what went wrong
    seconds: float | None = None


@dataclass(frozen=True)
class BatchOptions:
    paths: Sequence[str]
    output: Path
    jobs: int | None = None
    overwrite: bool = False
    server: str | None = None
    api_key: str | None = None


def run_batch(
    endpoint: str, fields: Mapping[str, Any], options: BatchOptions, *, out: Console, err: Console
) -> int:
    """Run ``endpoint`` with the API ``fields`` (``None``: the API's default) on every input;
    the exit code: 0 when nothing failed, 1 otherwise. Bad usage raises ``UsageError`` before
    any image is touched."""
    operation = OPERATIONS[endpoint]
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        params = validate(operation.model, given)
    except ParameterValidationError as exc:
        raise UsageError(exc.message) from None
    server, api_key = options.server, options.api_key
    if server and not api_key:
        raise UsageError("--server needs an API key: --api-key or RETOUCH_API_KEY")
    if options.output.exists() and not options.output.is_dir():
        raise UsageError(f"{options.output} is not a directory")
    items = collect(options.paths, options.output)
    pending, settled = plan(items, operation.extensions(params), overwrite=options.overwrite)
    skipped = sum(outcome.status == "skipped" for outcome in settled)
    started = time.perf_counter()
    if pending:
        options.output.mkdir(parents=True, exist_ok=True)
        if server and api_key:
            jobs = options.jobs or os.cpu_count() or 1
            with RetouchClient(api_key, base_url=server) as client:
                produce = _remote(client, operation, given)
                settled += _process(pending, produce, jobs, endpoint, server, skipped, err)
        else:
            settings = Settings()
            jobs = options.jobs or settings.cpu_threads
            produce = _local(operation, params, settings, Engines.load(settings))
            settled += _process(pending, produce, jobs, endpoint, "in-process", skipped, err)
    order = {item: index for index, item in enumerate(items)}
    outcomes = sorted(settled, key=lambda outcome: order[outcome.item])
    _report(endpoint, outcomes, time.perf_counter() - started, out)
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


def collect(arguments: Sequence[str], output: Path) -> list[Item]:
    """The inputs named by ``arguments`` (files, directories, glob patterns), each once, in
    order. Directories and patterns leave out hidden files and anything under ``output``, so
    the output folder may sit inside an input folder; a file named outright is always taken."""
    excluded = output.resolve()
    seen: set[Path] = set()
    items: list[Item] = []

    def add(source: Path, target: Path) -> None:
        resolved = source.resolve()
        if resolved not in seen:
            seen.add(resolved)
            items.append(Item(source, target))

    def add_directory(root: Path) -> None:
        for path in _walk(root, excluded):
            relative = path.relative_to(root)
            add(path, output / relative.parent / relative.stem)

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            add_directory(path)
        elif path.is_file():
            add(path, output / path.stem)
        elif _GLOB.search(argument):
            # Expanded here, not by the shell, so that a quoted pattern (or Windows) works too.
            matches = [Path(match) for match in sorted(glob.glob(argument, recursive=True))]
            if not matches:
                raise UsageError(f"No files match {argument}")
            for match in matches:
                if match.is_dir():
                    add_directory(match)
                elif match.is_file() and not match.resolve().is_relative_to(excluded):
                    add(match, output / match.stem)
        else:
            raise UsageError(f"No such file or directory: {argument}")
    return items


def _walk(root: Path, excluded: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            path.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in relative.parts)
            and path.is_file()
            and not path.resolve().is_relative_to(excluded)
        ):
            yield path


def plan(
    items: Sequence[Item], extensions: Sequence[str], *, overwrite: bool
) -> tuple[list[Item], list[Outcome]]:
    """Split ``items`` into those to process and those settled already: skipped because an
    output exists, or failed because an earlier input claims the same output name."""
    claimed: dict[Path, Item] = {}
    pending: list[Item] = []
    settled: list[Outcome] = []
    for item in items:
        first = claimed.setdefault(item.target, item)
        if first is not item:
            message = f"same output name as {first.source}; rename one of them"
            settled.append(Outcome(item, "failed", message))
            continue
        existing = next((p for ext in extensions if (p := item.output(ext)).exists()), None)
        if existing is not None and not overwrite:
            settled.append(Outcome(item, "skipped", str(existing)))
        else:
            pending.append(item)
    return pending, settled


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a rename replaces the file only once the
    bytes are on disk, so neither a crash nor Ctrl-C leaves a truncated image behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name with a suffix no input glob takes; "x" mode gets the usual umask permissions
    # (mkstemp's would be 0600).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with temporary.open("xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _local(
    operation: Operation, params: RequestModel, settings: Settings, engines: Engines
) -> Produce:
    def produce(source: Path) -> Output:
        return operation.local(params, source.read_bytes(), engines, settings)

    return produce


def _remote(client: RetouchClient, operation: Operation, fields: Mapping[str, Any]) -> Produce:
    # One client for every worker thread: httpx clients are thread-safe and share the pool.
    send = getattr(client, operation.client_method)

    def produce(source: Path) -> Output:
        result = send(source, **fields, as_="bytes")
        if result.data is None or result.media_type not in EXTENSIONS:
            raise ValueError(f"unexpected result type {result.media_type}")
        return Output(result.data, result.media_type)

    return produce


def _attempt(item: Item, produce: Produce) -> Outcome:
    started = time.perf_counter()
    try:
        result = produce(item.source)
        path = item.output(EXTENSIONS[result.media_type])
        write_atomically(path, result.data)
    except Exception as exc:  # one bad file is reported and the batch goes on
        return Outcome(item, "failed", _describe(exc), time.perf_counter() - started)
    return Outcome(item, "ok", str(path), time.perf_counter() - started)


def _describe(exc: Exception) -> str:
    if isinstance(exc, RetouchError):
        return f"{exc.error_code}: {exc.message}"
    if isinstance(exc, RetouchAPIError):
        return f"{exc.error_code or exc.status}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class _RateColumn(ProgressColumn):
    """Images per second, or seconds per image when that reads better."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        if not speed:
            return Text("-", style="progress.data.speed")
        text = f"{speed:.1f} images/s" if speed >= 1 else f"{1 / speed:.1f} s/image"
        return Text(text, style="progress.data.speed")


def _process(
    pending: Sequence[Item],
    produce: Produce,
    jobs: int,
    endpoint: str,
    where: str,
    skipped: int,
    err: Console,
) -> list[Outcome]:
    done = f", {skipped} already done" if skipped else ""
    images = f"{len(pending)} image{'s' if len(pending) > 1 else ''}"
    err.print(f"{endpoint}: {images}{done}; {jobs} at a time, {escape(where)}", highlight=False)
    outcomes: list[Outcome] = []
    counts = {"ok": 0, "failed": 0}
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            _RateColumn(table_column=Column(no_wrap=True)),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            console=err,
        ) as progress,
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="retouch-batch") as pool,
    ):
        task = progress.add_task(
            endpoint, total=len(pending), ok=counts["ok"], failed=counts["failed"]
        )
        futures = [pool.submit(_attempt, item, produce) for item in pending]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                counts[outcome.status] += 1
                if outcome.status == "failed":
                    progress.console.print(
                        f"[red]failed[/] {escape(str(outcome.item.source))}: "
                        f"{escape(outcome.detail)}",
                        highlight=False,
                    )
                progress.update(task, advance=1, ok=counts["ok"], failed=counts["failed"])
        except KeyboardInterrupt:
            # Leaving the pool's block would otherwise wait for every queued image; the ones
            # running finish their (atomic) writes, so the next run resumes where this stopped.
            pool.shutdown(cancel_futures=True)
            raise
    return outcomes


_STYLES = {"ok": "green", "skipped": "yellow", "failed": "red"}


def _report(endpoint: str, outcomes: Sequence[Outcome], seconds: float, out: Console) -> None:
    if not outcomes:
        out.print(f"{endpoint}: no images found (.jpg, .jpeg, .png, .webp)")
        return
    table = Table("file", "status", "output / error", "seconds", title=endpoint)
    for outcome in outcomes:
        table.add_row(
            Text(str(outcome.item.source)),
            Text(outcome.status, style=_STYLES[outcome.status]),
            Text(outcome.detail),
            "" if outcome.seconds is None else f"{outcome.seconds:.2f}",
        )
    out.print(table)
    totals = {status: sum(o.status == status for o in outcomes) for status in _STYLES}
    out.print(
        f"{totals['ok']} ok, {totals['skipped']} skipped, {totals['failed']} failed "
        f"in {seconds:.1f} s",
        highlight=False,
    )
