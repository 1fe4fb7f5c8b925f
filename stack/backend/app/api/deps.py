"""Short dependency aliases for route handlers: `SessionDep`, `SettingsDep`, `BroadcasterDep`.

They read what `create_app` and the lifespan put on the app, so a test's app gets its own settings and database
without overrides. Works for HTTP requests and WebSockets alike.
"""

from collections.abc import Iterator
from typing import Annotated

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


def get_session(resources: Annotated[Resources, Depends(get_resources)]) -> Iterator[Session]:
    with resources.session_factory() as session:
        yield session


def get_broadcaster(resources: Annotated[Resources, Depends(get_resources)]) -> Broadcaster:
    return resources.broadcaster


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[Session, Depends(get_session)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
