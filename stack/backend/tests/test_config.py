"""Settings: where they come from, what is refused, and how DATABASE_URL is read."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings, SettingsError, get_settings
from app.core.db import database_url

URL = "postgresql+psycopg://app:pw@/app?host=/run"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    for name in Settings.model_fields:
        if name != "database_url":
            monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)
    assert settings.uploads_dir == Path("uploads")
    assert settings.max_upload_bytes == 10 * 1024 * 1024
    assert (settings.environment, settings.debug, settings.log_level) == ("local", False, "info")
    assert settings.debugger_address is None
    assert settings.app_version == "0.1.0"
    assert settings.loaded == ["DATABASE_URL"]


def test_environment_and_env_file_are_both_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL={URL}\nLOG_LEVEL=DEBUG\nNOT_OURS=1\n")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2048")
    monkeypatch.setenv("DEBUG", "true")
    settings = Settings(_env_file=env_file)
    assert (settings.max_upload_bytes, settings.debug, settings.log_level) == (2048, True, "debug")
    assert settings.loaded == ["DATABASE_URL", "DEBUG", "LOG_LEVEL", "MAX_UPLOAD_BYTES"]


def test_database_url_is_required_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="database_url"):
        Settings(_env_file=None)
    settings = Settings(_env_file=None, database_url=URL)
    assert "pw" not in repr(settings)


def test_get_settings_names_what_is_wrong_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "-5")
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(caught.value) == (
        "The backend's settings are invalid (DATABASE_URL: Field required; MAX_UPLOAD_BYTES: Input should be"
        " greater than 0); set them in the environment."
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"environment": "prod"}, "'local', 'staging' or 'production'"),
        ({"max_upload_bytes": 0}, "greater than 0"),
        ({"log_level": "loud"}, "'critical', 'error', 'warning', 'info' or 'debug'"),
        ({"environment": "production", "debug": True}, "DEBUG must be false"),
        ({"environment": "production", "debugpy_listen": "5678"}, "DEBUGPY_LISTEN must be empty"),
        ({"debugpy_listen": "localhost:http"}, "expected host:port or a port"),
        ({"debugpy_listen": "70000"}, "expected host:port or a port"),
        ({"db_pool_size": 0}, "greater than 0"),
        ({"db_max_overflow": -1}, "greater than or equal to 0"),
        ({"db_pool_timeout": -0.5}, "greater than or equal to 0"),
    ],
)
def test_bad_values_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, database_url=URL, **changes)


@pytest.mark.parametrize(
    ("given", "address"),
    [("5678", ("127.0.0.1", 5678)), ("0.0.0.0:5679", ("0.0.0.0", 5679)), (":5680", ("127.0.0.1", 5680)), ("", None)],
)
def test_debugpy_listen_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: str, address: tuple[str, int] | None
) -> None:
    monkeypatch.setenv("DEBUGPY_LISTEN", given)
    assert Settings(_env_file=None, database_url=URL).debugger_address == address


@pytest.mark.parametrize(
    "given",
    ["postgresql:///app?host=/run", "postgres:///app?host=/run", "postgresql+psycopg:///app?host=/run"],
)
def test_database_url_is_read_as_psycopg(given: str) -> None:
    url = database_url(Settings(_env_file=None, database_url=given))
    assert (url.drivername, url.database, url.query["host"]) == ("postgresql+psycopg", "app", "/run")


def test_a_bad_database_url_is_named_without_its_password() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL is not a database URL") as caught:
        database_url(Settings(_env_file=None, database_url="not a url :hunter2"))
    assert "hunter2" not in str(caught.value)
