"""/api/health (the process answers), /api/ready (it can serve), /api/info (what runs, without secrets)."""

from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import readiness
from app.api.deps import ResourcesDep, SettingsDep
from app.core.config import Environment

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class CheckPublic(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, CheckPublic]


class Info(BaseModel):
    environment: Environment
    version: str
    debug: bool
    max_upload_bytes: int
    settings_loaded: list[str]


@router.get("/health")
def health() -> Health:
    """The process is alive; asks nothing of the database."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness, "description": "A check failed"}},
)
def ready(resources: ResourcesDep, settings: SettingsDep) -> JSONResponse:
    """200 when the database answers, its migrations are at head and the uploads folder is writable; else 503."""
    checks = readiness.run_checks(resources.engine, settings.uploads_dir)
    is_ready = all(check.ok for check in checks.values())
    body = Readiness(
        status="ready" if is_ready else "not ready",
        checks={name: CheckPublic(ok=check.ok, detail=check.detail) for name, check in checks.items()},
    )
    code = status.HTTP_200_OK if is_ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)


@router.get("/info")
def info(settings: SettingsDep) -> Info:
    """The environment, version and the names (never the values) of the settings that were given."""
    return Info(
        environment=settings.environment,
        version=settings.app_version,
        debug=settings.debug,
        max_upload_bytes=settings.max_upload_bytes,
        settings_loaded=settings.loaded,
    )
