"""Fixtures: one throwaway PostgreSQL for the session, migrated with the real `alembic upgrade head`, and a
fresh app (with its own uploads folder) per test."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from throwaway_postgres import ThrowawayPostgres, find_bindir

BACKEND_DIR = Path(__file__).resolve().parent.parent
TEST_UPLOAD_LIMIT = 64 * 1024


def alembic(database_url: str, *args: str) -> None:
    """Runs the alembic command line from the backend folder, as the stack's migrate step does."""
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=BACKEND_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, postgres) in $PG_BINDIR, /usr/lib/postgresql/*/bin or on PATH;"
            " install PostgreSQL (Debian: apt-get install postgresql) to run the backend tests"
        )
    with ThrowawayPostgres(bindir) as server:
        server.create_database("app")
        yield server


@pytest.fixture(scope="session")
def database_url(postgres: ThrowawayPostgres) -> str:
    url = postgres.url("app")
    alembic(url, "upgrade", "head")
    return url


@pytest.fixture
def empty_database(postgres: ThrowawayPostgres, database_url: str) -> None:
    with psycopg.connect(postgres.conninfo("app")) as connection:
        connection.execute("TRUNCATE note, attachment RESTART IDENTITY CASCADE")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,  # pydantic makes it a SecretStr
        uploads_dir=tmp_path / "uploads",
        max_upload_bytes=TEST_UPLOAD_LIMIT,
    )


@pytest.fixture
def client(settings: Settings, empty_database: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
