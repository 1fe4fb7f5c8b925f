"""What the app opens at startup and closes at shutdown: the uploads folder, the database engine (and the admission
of requests to its pool), the broadcaster.

`open_resources` is the body of the app's lifespan; request handlers reach the result through `api.deps`.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import uploads
from app.core.config import Settings
from app.core.db import Admission, make_engine, make_session_factory
from app.events import Broadcaster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    engine: Engine
    session_factory: sessionmaker[Session]
    broadcaster: Broadcaster
    admission: Admission


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    uploads.ensure_directory(settings.uploads_dir)
    engine = make_engine(settings)
    broadcaster = Broadcaster()
    log.info(
        "Backend %s starting (environment %s, uploads in %s)",
        settings.app_version,
        settings.environment,
        settings.uploads_dir,
    )
    try:
        yield Resources(
            engine=engine,
            session_factory=make_session_factory(engine),
            broadcaster=broadcaster,
            admission=Admission(settings.db_pool_size + settings.db_max_overflow, settings.db_pool_timeout),
        )
    finally:
        broadcaster.close()
        engine.dispose()
