"""The application factory: `create_app()` builds the FastAPI app from the settings.

`app.main:app` (what uvicorn is given) is built lazily on first access, so importing this module reads no
settings and opens nothing; tests call `create_app(settings)` with their own settings.
"""

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.api.main import api_router
from app.api.middleware import BodyLimitMiddleware, NoStoreMiddleware
from app.core.access_log import quiet_ready_probes
from app.core.config import LogLevel, Settings, get_settings
from app.resources import open_resources
from app.uploads import UploadTooLarge

API_PREFIX = "/api"
# Room for the multipart framing around the file; the file itself is held to MAX_UPLOAD_BYTES while it is stored.
FORM_OVERHEAD_BYTES = 64 * 1024
_LOG_HANDLER = "stack-backend-stdout"


def configure_logging(level: LogLevel) -> None:
    """Sends the `app.*` loggers to stdout at LOG_LEVEL (uvicorn's own loggers follow its --log-level), and keeps
    the healthcheck's successful readiness probes out of uvicorn's access log (app/core/access_log.py)."""
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    if not any(handler.get_name() == _LOG_HANDLER for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_LOG_HANDLER)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
    quiet_ready_probes()


def start_debugger(address: tuple[str, int]) -> None:
    """Listens for a debugger (VS Code's "attach") in this process.

    The adapter runs in-process, so the port is freed when the process ends; `python -m debugpy --listen` starts it
    as a separate process that outlives a stopped or reloaded server and keeps the port.
    """
    import debugpy  # only when asked for: it installs tracing hooks on import

    debugpy.listen(address, in_process_debug_adapter=True)
    logging.getLogger(__name__).info("debugpy listening on %s:%d", *address)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.debugger_address is not None:
        start_debugger(settings.debugger_address)
    async with open_resources(settings) as resources:
        app.state.resources = resources
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="unistack notes",
        version=settings.app_version,
        debug=settings.debug,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_size=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        detail=str(UploadTooLarge(settings.max_upload_bytes)),
    )
    app.add_middleware(NoStoreMiddleware, prefix=API_PREFIX)  # added last, so outermost: it marks every 413 too
    install_error_handlers(app)  # a pool exhausted past DB_POOL_TIMEOUT: 503 with Retry-After
    app.include_router(api_router, prefix=API_PREFIX)
    return app


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """`app.main:app`, built from `get_settings()` on first access (PEP 562) rather than at import."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
