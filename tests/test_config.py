"""Settings come from RETOUCH_* variables and an optional TOML file; the environment wins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from retouch.config import Settings, unknown_settings


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


def test_unknown_variables_and_config_keys_are_named_with_the_closest_setting(
    tmp_path: Path,
) -> None:
    config = tmp_path / "retouch.toml"
    config.write_text('port = 9100\nredis = "redis://127.0.0.1:6379/0"\n')
    environ = {
        "RETOUCH_CONFIG_FILE": str(config),
        "RETOUCH_PORT": "9200",
        "RETOUCH_ALLOW_PRIVATE_URLS": "true",
        "retouch_price_upscaling": "2",  # settings are case-insensitive, so is the check
        "RETOUCH_FOO": "1",
        "RETOUCH_API_KEY": "sk_x",  # the batch commands' client option, not a setting
        "HOME": "/root",
    }

    messages = unknown_settings(environ)

    assert messages == [
        "RETOUCH_ALLOW_PRIVATE_URLS is not a Retouch setting and is ignored; did you mean "
        "RETOUCH_FETCH_ALLOW_NETWORKS or RETOUCH_WEBHOOK_ALLOW_NETWORKS?",
        "RETOUCH_FOO is not a Retouch setting and is ignored; no setting has a similar name "
        "(see the README's configuration table)",
        "retouch_price_upscaling is not a Retouch setting and is ignored; did you mean "
        "RETOUCH_PRICE_UPSCALE?",
        f"{config}: key 'redis' is not a Retouch setting and is ignored; did you mean redis_url?",
    ]


def test_known_names_raise_no_warning(tmp_path: Path) -> None:
    config = tmp_path / "retouch.toml"
    config.write_text("port = 9100\nlog_json = true\n")
    environ = {f"RETOUCH_{name.upper()}": "1" for name in Settings.model_fields}
    environ["RETOUCH_CONFIG_FILE"] = str(config)
    assert unknown_settings(environ) == []


def readme_configuration_table() -> dict[str, str]:
    """The README's configuration table: each variable and its Default cell."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`RETOUCH_"):
            continue
        # One row may list several variables and their defaults: `A` / `B` | `1` / `2`.
        names = cells[0].split(" / ")
        defaults = cells[1].split(" / ") if len(names) > 1 else [cells[1]]
        assert len(names) == len(defaults), line
        for name, default in zip(names, defaults, strict=True):
            assert name not in rows, f"{name} listed twice"
            rows[name.strip("`")] = default
    return rows


def documented(value: object) -> str:
    """A default as the README writes it: the environment variable's own spelling."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, Path):
        return value.as_posix() if value.is_absolute() else f"./{value.as_posix()}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_readme_configuration_table_lists_every_setting_with_its_default() -> None:
    table = readme_configuration_table()
    fields = {f"RETOUCH_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert not table.keys() - fields.keys(), "README lists settings that do not exist"
    assert not fields.keys() - table.keys(), "settings missing from the README's table"
    for name, cell in table.items():
        default = fields[name].get_default(call_default_factory=True)
        literal = re.match(r"`([^`]*)`", cell)
        if default is None:
            # Unset settings are described in words ("unset", "random, in ..."), not a value.
            assert literal is None, f"{name}: README gives {cell!r}, the default is unset"
        else:
            assert literal, f"{name}: README gives {cell!r}, the default is {default!r}"
            assert literal.group(1) == documented(default), f"{name}: {cell!r} vs {default!r}"
