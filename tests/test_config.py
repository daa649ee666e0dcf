"""Settings come from RETOUCH_* variables and an optional TOML file; the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from retouch.config import Settings


def test_environment_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "retouch.toml"
    config.write_text("port = 9100\nrate_limit_per_second = 9\nprice_upscale = 2\n")
    monkeypatch.setenv("RETOUCH_CONFIG_FILE", str(config))
    monkeypatch.setenv("RETOUCH_PORT", "9200")
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "d"))

    settings = Settings()

    assert settings.port == 9200  # the environment beats the file
    assert settings.rate_limit_per_second == 9
    assert settings.price_upscale == 2
    assert settings.sqlalchemy_url == f"sqlite:///{(tmp_path / 'd' / 'retouch.db').resolve()}"


def test_a_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETOUCH_CONFIG_FILE", "/nonexistent/retouch.toml")
    with pytest.raises(FileNotFoundError, match="RETOUCH_CONFIG_FILE"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETOUCH_RATE_LIMIT_PER_SECOND", "0"),
        ("RETOUCH_PRICE_SHADOW", "-1"),
        ("RETOUCH_PORT", "x"),
        # Presigned URLs need a bucket to sign for; results on local disk have none.
        ("RETOUCH_RESULT_URLS", "presigned"),
        ("RETOUCH_RESULT_URLS", "cdn"),
    ],
)
def test_unsafe_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_cpu_threads_are_shared_among_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings(workers=1).cpu_threads == 8
    assert Settings(workers=4).cpu_threads == 2
    assert Settings(workers=16).cpu_threads == 1
    assert Settings(workers=4, worker_threads=3).cpu_threads == 3
