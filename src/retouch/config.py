"""Settings: the one place configuration is read.

Every field comes from a ``RETOUCH_*`` environment variable or, when ``RETOUCH_CONFIG_FILE`` names
one, from a TOML file with the same keys (environment wins). Nothing else in the package reads
``os.environ``; the CLI builds a ``Settings`` and hands it to ``create_app``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, HttpUrl, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "RETOUCH_CONFIG_FILE"
ENV_PREFIX = "RETOUCH_"
# RETOUCH_* variables that are read on purpose although they name no setting: the config file
# itself, and the batch commands' client options (typer reads those).
OTHER_VARIABLES = frozenset({CONFIG_FILE_ENV, "RETOUCH_SERVER", "RETOUCH_API_KEY"})

log = logging.getLogger(__name__)

NonNegative = Annotated[int, Field(ge=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1

    data_dir: Path = Path("./retouch-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file in the data directory.",
    )
    redis_url: str | None = Field(
        default=None,
        description="When set, rate limits are shared by every process through Redis.",
    )

    redis_prefix: str = Field(
        default="retouch", description="Prefix of every Redis key, so deployments can share one."
    )

    rate_limit_per_second: Annotated[int, Field(ge=1)] = 5
    rate_limit_fail_open: bool = Field(
        default=True,
        description="Serve requests unlimited (True) or refuse them while Redis is down.",
    )
    starter_credits: NonNegative = 100

    price_remove_background: NonNegative = 1
    price_shadow: NonNegative = 3
    price_generate_background: NonNegative = 1
    price_upscale: NonNegative = 1
    price_outpaint: NonNegative = 1
    price_try_on: NonNegative = 1
    price_garment_extraction: NonNegative = 5
    reservation_ttl_seconds: Annotated[int, Field(ge=5)] = Field(
        default=900,
        description="A reservation no live process has renewed for this long is refunded; "
        "live requests renew theirs every third of it (jobs' last as long as their job may).",
    )

    result_ttl_seconds: Annotated[int, Field(ge=1)] = 3600
    results_url: str | None = Field(
        default=None,
        pattern=r"^s3://",
        description="s3://bucket/prefix keeps results in S3; default is the data dir's results/.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible server (SeaweedFS, MinIO) instead of AWS."
    )
    result_urls: Literal["retouch", "presigned"] = Field(
        default="retouch",
        description="What a result_url points at: this API (any node serves it) or, with S3 "
        "results, a presigned S3 URL that clients download from the bucket directly.",
    )
    result_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="HMAC key for result URLs; default is a random key kept in the database.",
    )
    sweep_interval_seconds: Annotated[int, Field(ge=1)] = 60
    idempotency_ttl_seconds: Annotated[int, Field(ge=60)] = 24 * 3600

    worker_threads: Annotated[int | None, Field(ge=1)] = Field(
        default=None,
        description="Threads per process for decoding, inference and encoding "
        "(default: the machine's cores divided among the server processes).",
    )
    max_pending_tasks: Annotated[int, Field(ge=1)] = Field(
        default=32, description="Images admitted (running or waiting) before 429s."
    )
    inference_threads: Annotated[int, Field(ge=1)] = Field(
        default=1, description="ONNX Runtime intra-op threads per inference."
    )
    lone_inference_threads: Annotated[int | None, Field(ge=1)] = Field(
        default=None,
        description="Intra-op threads for an inference that runs alone, so a lone request uses "
        "every core (default: the worker threads); under load each gets inference_threads.",
    )
    segmenter: str = Field(default="u2netp", description="Background-removal model.")
    segmenter_runtime: Literal["onnxruntime", "openvino", "openvino-bf16"] = Field(
        default="openvino",
        description="Runtime of the background-removal model: openvino (f32), openvino-bf16 "
        "(f32 on CPUs without bf16) or onnxruntime.",
    )
    stage_timings: bool = Field(
        default=False,
        description="Log each remove-background request's CPU and wall time per stage "
        "(decode, model, refine, cutout, encode); for benchmarks.",
    )
    upscaler: str = Field(
        default="span", description="Upscale engine: span (neural) or bicubic (baseline)."
    )
    background_generator: str = Field(
        default="procedural",
        description="Engine drawing generate-background scenes: procedural or diffusion.",
    )
    try_on_engine: str = Field(
        default="geometric", description="Try-on engine: geometric or diffusion."
    )
    filler: str = Field(
        default="patchmatch", description="Outpaint engine: patchmatch, telea or diffusion."
    )
    diffusion_weights: Path | None = Field(
        default=None,
        description="A diffusers inpainting pipeline folder (save_pretrained layout); needed by "
        "the diffusion engines. Never downloaded.",
    )
    diffusion_steps: Annotated[int, Field(ge=1, le=200)] = 25

    run_jobs: bool = Field(
        default=True,
        description="Whether `retouch serve` processes run jobs themselves; set false on API "
        "nodes when `retouch worker` processes do it.",
    )
    job_concurrency: Annotated[int, Field(ge=1)] = Field(
        default=2, description="Jobs one process runs at once."
    )
    job_timeout_seconds: Annotated[float, Field(gt=0)] = 120
    job_max_attempts: Annotated[int, Field(ge=1)] = 2
    job_heartbeat_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10,
        description="How often a running job's process says it is alive; a job silent for "
        "three of these is presumed orphaned by a crash and retried.",
    )
    job_queue_timeout_seconds: Annotated[int, Field(ge=1)] = 900
    job_retention_seconds: Annotated[int, Field(ge=60)] = 3600
    job_wait_seconds: Annotated[float, Field(gt=0)] = 60

    webhook_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Master key from which each account's webhook signing key is derived; "
        "default is a random key kept in the database.",
    )
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    webhook_timeout_seconds: Annotated[float, Field(gt=0)] = 10
    webhook_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks webhook_url may reach although private/loopback.",
    )

    image_max_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    image_min_side: Annotated[int, Field(ge=1)] = 64
    image_max_side: Annotated[int, Field(ge=1)] = 6000
    fetch_timeout_seconds: Annotated[float, Field(gt=0)] = 20
    fetch_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks image_url may reach although private/loopback (e.g. 10.0.0.0/8).",
    )
    public_base_url: HttpUrl | None = Field(
        default=None,
        description="Base of result URLs; default is the URL the request came in on.",
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="Host names requests may name in their Host header ('*.example.com' and '*' "
        "match many); others get 400. Default: loopback names, the bound host and the host of "
        "public_base_url.",
    )
    forwarded_allow_ips: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Proxies whose X-Forwarded-Proto and X-Forwarded-For are believed; by "
        "default none.",
    )

    max_request_bytes: Annotated[int, Field(ge=1024)] = 26 * 1024 * 1024
    header_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10,
        description="Longest a client may take to send a request's line and headers; slower "
        "connections are closed (with 408 once a request has begun).",
    )
    request_body_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60,
        description="Longest a client may take to send a request body; slower uploads "
        "(slow-loris) get 408 `request_timeout` and the connection is closed.",
    )

    metrics_port: Annotated[int | None, Field(ge=1, le=65535)] = Field(
        default=None,
        description="Port of a separate listener serving only /metrics; unset: no metrics.",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Interface of the metrics port.")

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _presigned_needs_s3(self) -> Self:
        if self.result_urls == "presigned" and self.results_url is None:
            raise ValueError("RETOUCH_RESULT_URLS=presigned needs S3 results (RETOUCH_RESULTS_URL)")
        return self

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> Self:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("RETOUCH_METRICS_PORT must differ from the API's port")
        return self

    @property
    def served_hosts(self) -> list[str]:
        """Host names (lower case) or patterns a request's Host may name."""
        if self.allowed_hosts is not None:
            return [host.lower() for host in self.allowed_hosts]
        hosts = ["localhost", "127.0.0.1", "::1"]
        if self.host not in ("0.0.0.0", "::", ""):
            hosts.append(self.host.strip("[]").lower())
        if self.public_base_url is not None and self.public_base_url.host:
            hosts.append(self.public_base_url.host.strip("[]").lower())
        return list(dict.fromkeys(hosts))

    @property
    def cpu_threads(self) -> int:
        return self.worker_threads or max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def models_dir(self) -> Path:
        """Where ``retouch models install`` puts operator-installed models."""
        return self.data_dir / "models"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def metrics_dir(self) -> Path | None:
        """Where the processes of `retouch serve --workers N` pool their metrics (N > 1)."""
        return self.data_dir / "metrics" if self.workers > 1 else None

    @property
    def secret_file(self) -> Path:
        """Where the generated result-URL key was kept before keys moved into the database;
        retouch.server_secrets adopts a key found here."""
        return self.data_dir / "secret.key"

    @property
    def webhook_secret_file(self) -> Path:
        """The same, for the webhook master key."""
        return self.data_dir / "webhook.key"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'retouch.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file} is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def unknown_settings(
    environ: Mapping[str, str] | None = None, config: Mapping[str, object] | None = None
) -> list[str]:
    """One warning per ``RETOUCH_*`` variable and config file key that names no setting.

    Settings ignore such names (a typo would otherwise stop every start), so a misspelt
    ``RETOUCH_ALLOW_PRIVATE_URLS`` silently runs with defaults; these messages name each one and
    the closest real setting. Both arguments default to what ``Settings()`` reads.
    """
    environ = os.environ if environ is None else environ
    if config is None:
        path = environ.get(CONFIG_FILE_ENV)
        config = tomllib.loads(Path(path).read_text()) if path and Path(path).is_file() else {}
    messages = []
    for name in sorted(environ):
        field = name.lower().removeprefix(ENV_PREFIX.lower())
        if (
            name.upper().startswith(ENV_PREFIX)
            and name.upper() not in OTHER_VARIABLES
            and field not in Settings.model_fields
        ):
            hint = _closest(field, lambda f: ENV_PREFIX + f.upper())
            messages.append(f"{name} is not a Retouch setting and is ignored{hint}")
    source = environ.get(CONFIG_FILE_ENV, "config file")
    for key in sorted(config):
        if key.lower() not in Settings.model_fields:
            hint = _closest(key.lower(), lambda f: f)
            messages.append(f"{source}: key {key!r} is not a Retouch setting and is ignored{hint}")
    return messages


def log_unknown_settings() -> None:
    """Warn, once at a process's start, about every name ``unknown_settings`` finds."""
    for message in unknown_settings():
        log.warning(message)


def _closest(name: str, spell: Callable[[str], str]) -> str:
    """``"; did you mean X?"`` for the setting most like ``name``, or ``""`` if none is.

    Scored half on spelling and half on shared words, the field's description included, so
    ``allow_private_urls`` finds ``fetch_allow_networks`` (whose description says "private").
    """

    def similar(a: str, b: str) -> bool:
        return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8

    def score(field: str) -> float:
        words = set(field.split("_"))
        words |= set(
            re.findall(r"[a-z0-9]+", (Settings.model_fields[field].description or "").lower())
        )
        parts = name.split("_")
        shared = sum(any(similar(part, word) for word in words) for part in parts) / len(parts)
        return 0.5 * difflib.SequenceMatcher(None, name, field).ratio() + 0.5 * shared

    ranked = sorted(Settings.model_fields, key=score, reverse=True)
    best = score(ranked[0])
    if best < 0.3:
        return "; no setting has a similar name (see the README's configuration table)"
    # Two near-equal candidates (fetch_/webhook_allow_networks) are both worth naming.
    close = [field for field in ranked[:2] if score(field) >= best - 0.03]
    return f"; did you mean {' or '.join(spell(field) for field in close)}?"
