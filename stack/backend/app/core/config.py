"""The backend's settings, read from the environment (and a `.env` file in the working folder).

Owns the names, types and defaults of every setting, checked together so that every problem is named at once.
Never connects or creates anything: the database engine is built in `core.db`, the uploads folder at startup.
"""

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "staging", "production"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def package_version() -> str:
    """The installed version of `stack-backend`, the default for APP_VERSION."""
    try:
        return version("stack-backend")
    except PackageNotFoundError:
        return "0.0.0+unknown"


class Settings(BaseSettings):
    """Every setting, by the name of its environment variable in lower case (`DATABASE_URL` -> `database_url`)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    # A secret (it usually holds the password), so it has no default and is never shown.
    # libpq style works too: `postgresql:///app?host=/path/to/run` is read as `postgresql+psycopg://...`.
    database_url: SecretStr
    # The connection pool (see `core.db`): DB_POOL_SIZE kept open, DB_MAX_OVERFLOW more opened under load, and how
    # long a request waits for one (DB_POOL_TIMEOUT, seconds) before it is refused with 503 and Retry-After.
    db_pool_size: PositiveInt = 5
    db_max_overflow: NonNegativeInt = 10
    db_pool_timeout: NonNegativeFloat = 2.0
    uploads_dir: Path = Path("uploads")
    max_upload_bytes: PositiveInt = 10 * 1024 * 1024
    environment: Environment = "local"
    app_version: str = Field(default_factory=package_version)
    debug: bool = False
    log_level: LogLevel = "info"
    # `host:port` (or a port, on 127.0.0.1) for a debugger to attach to; off by default, refused in production.
    debugpy_listen: str | None = None

    @field_validator("log_level", "environment", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("debugpy_listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, _, port = value.strip().rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port or a port, such as 127.0.0.1:5678")
        return f"{host or '127.0.0.1'}:{int(port)}"

    @model_validator(mode="after")
    def _no_debugging_in_production(self) -> Self:
        if self.environment == "production" and self.debug:
            raise ValueError("DEBUG must be false when ENVIRONMENT is production (it shows tracebacks to clients)")
        if self.environment == "production" and self.debugpy_listen:
            raise ValueError("DEBUGPY_LISTEN must be empty when ENVIRONMENT is production")
        return self

    @property
    def debugger_address(self) -> tuple[str, int] | None:
        if self.debugpy_listen is None:
            return None
        host, _, port = self.debugpy_listen.rpartition(":")
        return host, int(port)

    @property
    def loaded(self) -> list[str]:
        """The names of the settings that were given (environment, `.env` or arguments), never their values."""
        return sorted(name.upper() for name in self.model_fields_set)


class SettingsError(ValueError):
    """The settings are missing or invalid; the message names the variables, never their values."""


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    try:
        return Settings()  # DATABASE_URL, required, comes from the environment
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"The backend's settings are invalid ({problems}); set them in the environment.") from None
