"""uvicorn's access log without the healthcheck's noise: a successful `GET /api/ready` is not logged.

The stack's healthcheck (`python -m app.healthcheck`, compose.yaml) asks `/api/ready` every 5 s in every
environment; one access-log line per probe buried the requests that matter. Owns only that filter; it never
changes how, where or at which level anything else is logged: every other request, and a readiness answer other
than 200 (the database away: 503), is logged as before.
"""

import logging

from app.healthcheck import DEFAULT_PATH as READY_PATH

ACCESS_LOGGER = "uvicorn.access"


class ReadyProbeFilter(logging.Filter):
    """Drops the access-log record of a `GET` (or `HEAD`) of READY_PATH answered 200.

    uvicorn logs each request as `'%s - "%s %s HTTP/%s" %d'` with (client, method, path?query, version, status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _client, method, path, _version, status = args
        return not (method in ("GET", "HEAD") and str(path).partition("?")[0] == READY_PATH and status == 200)


def quiet_ready_probes() -> None:
    """Installs the filter on uvicorn's access logger, once (the app may be created more than once)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, ReadyProbeFilter) for f in logger.filters):
        logger.addFilter(ReadyProbeFilter())
