"""Short dependency aliases for route handlers: `SessionDep`, `SettingsDep`, `BroadcasterDep`.

They read what `create_app` and the lifespan put on the app, so a test's app gets its own settings and database
without overrides. Works for HTTP requests and WebSockets alike.
"""

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from app.core.config import Settings
from app.events import Broadcaster
from app.resources import Resources


def get_app_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


def get_resources(connection: HTTPConnection) -> Resources:
    resources: Resources = connection.app.state.resources
    return resources


async def get_session(resources: Annotated[Resources, Depends(get_resources)]) -> AsyncIterator[Session]:
    """A session, once the request is admitted to the database (`core.db.Admission`: else 503 after
    DB_POOL_TIMEOUT); closed, and its connection returned, as soon as the route returns (not once the response has
    been sent: a download to a slow client holds no connection)."""
    async with resources.admission.slot():
        session = resources.session_factory()
        try:
            yield session
        finally:
            with anyio.CancelScope(shield=True):  # closed even when the client has gone
                await anyio.to_thread.run_sync(session.close)


def get_broadcaster(resources: Annotated[Resources, Depends(get_resources)]) -> Broadcaster:
    return resources.broadcaster


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
