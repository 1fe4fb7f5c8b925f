"""The database engine and sessions, built from the settings when asked (never at import).

Owns the translation of DATABASE_URL into a SQLAlchemy URL for psycopg 3. Knows nothing of the tables
(`app.models`) or of the queries (`app.crud`).
"""

from sqlalchemy import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings

# libpq's spellings, all read as psycopg 3 (the only driver installed).
_PSYCOPG_ALIASES = {"postgres", "postgresql", "postgresql+psycopg"}


def database_url(settings: Settings) -> URL:
    """DATABASE_URL as a SQLAlchemy URL on psycopg 3; a unix socket folder goes in `?host=`."""
    try:
        url = make_url(settings.database_url.get_secret_value())
    except ArgumentError:
        # SQLAlchemy's message repeats the URL, password included.
        raise ValueError(
            "DATABASE_URL is not a database URL; expected postgresql+psycopg://user:pw@/db?host=/dir"
        ) from None
    if url.drivername in _PSYCOPG_ALIASES:
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(settings: Settings) -> Engine:
    """A pooled engine; connections are checked before use so a restarted database is picked up again."""
    return create_engine(database_url(settings), pool_pre_ping=True, connect_args={"connect_timeout": 5})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)
