"""/api/health, /api/ready (each check failing on its own) and /api/info (no secrets)."""

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from conftest import alembic


def test_health(client: TestClient) -> None:
    response = client.get("/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_everything_is_in_place(client: TestClient) -> None:
    response = client.get("/api/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert all(check["ok"] for check in response.json()["checks"].values())


def test_not_ready_until_migrations_reach_head(client: TestClient, database_url: str) -> None:
    alembic(database_url, "downgrade", "base")
    try:
        response = client.get("/api/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not ready"
        assert set(body["checks"]) == {"database", "migrations", "uploads"}
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["migrations"] == {
            "ok": False,
            "detail": "database at no revision, code at head 0002: run `alembic upgrade head`",
        }
        assert body["checks"]["uploads"]["ok"] is True
    finally:
        alembic(database_url, "upgrade", "head")
    assert client.get("/api/ready").status_code == 200


def test_not_ready_when_uploads_dir_is_not_writable(client: TestClient, settings: Settings) -> None:
    shutil.rmtree(settings.uploads_dir)
    settings.uploads_dir.write_text("a file where the folder should be")  # defeats root's permissions too
    response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["uploads"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


def test_not_ready_without_database(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"postgresql://app:hunter2@/app?host={tmp_path}/nowhere",
        uploads_dir=tmp_path / "uploads",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 200
        response = client.get("/api/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert "nowhere" in checks["database"]["detail"]
    assert checks["migrations"] == {"ok": False, "detail": "skipped: no database"}
    assert "hunter2" not in response.text


def test_info_names_settings_without_values(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql+psycopg://app:s3cret-pw@/app?host=/run/db",
        uploads_dir=tmp_path / "uploads",
        environment="staging",
        app_version="1.2.3",
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/info")
    assert response.status_code == 200
    assert response.json() == {
        "environment": "staging",
        "version": "1.2.3",
        "debug": False,
        "max_upload_bytes": 10 * 1024 * 1024,
        "settings_loaded": ["APP_VERSION", "DATABASE_URL", "ENVIRONMENT", "UPLOADS_DIR"],
    }
    for secret in ("s3cret", "postgresql", "/run/db", str(tmp_path)):
        assert secret not in response.text
