"""Settings: the one place configuration is read.

Every field comes from a ``RETOUCH_*`` environment variable or, when ``RETOUCH_CONFIG_FILE`` names
one, from a TOML file with the same keys (environment wins). Nothing else in the package reads
``os.environ``; the CLI builds a ``Settings`` and hands it to ``create_app``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "RETOUCH_CONFIG_FILE"

NonNegative = Annotated[int, Field(ge=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETOUCH_", extra="ignore", frozen=True)

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
    reservation_ttl_seconds: Annotated[int, Field(ge=60)] = 900

    result_ttl_seconds: Annotated[int, Field(ge=1)] = 3600
    public_base_url: HttpUrl | None = Field(
        default=None,
        description="Base of result URLs; default is the URL the request came in on.",
    )

    max_request_bytes: Annotated[int, Field(ge=1024)] = 26 * 1024 * 1024

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

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
