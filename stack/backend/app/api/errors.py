"""What clients are told when the backend cannot serve them now: `install_error_handlers(app)`.

Owns one mapping: a request that found every database connection in use for longer than DB_POOL_TIMEOUT
(`core.db.DatabaseBusy` from the admission, or SQLAlchemy's own `TimeoutError`, "QueuePool limit ... reached")
becomes `503 Service Unavailable` with `Retry-After` and a JSON `detail`, instead of a 500 with a traceback, so a
client under load is refused quickly and knows when to try again (uvicorn's access log shows each 503). Never
retries, queues or limits anything itself: the bounds are `core.db`'s.
"""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.core.db import DatabaseBusy

RETRY_AFTER_SECONDS = 1
BUSY_DETAIL = "The server is busy: every database connection is in use. Try again in a moment."


async def database_busy(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": BUSY_DETAIL},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DatabaseBusy, database_busy)  # no turn at the pool within DB_POOL_TIMEOUT
    app.add_exception_handler(PoolTimeoutError, database_busy)  # the pool's own wait (a route outside admission)
