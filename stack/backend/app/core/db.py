"""The database engine and sessions, built from the settings when asked (never at import).

Owns the translation of DATABASE_URL into a SQLAlchemy URL for psycopg 3, the pool's bounds, and the admission of
requests to the pool (`Admission`). Knows nothing of the tables (`app.models`) or of the queries (`app.crud`);
what a client is told when the pool is exhausted is `api.errors`'s.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
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
    """A pooled engine whose checkouts wait at most DB_POOL_TIMEOUT seconds, without `pool_pre_ping`.

    The pool holds DB_POOL_SIZE connections and opens up to DB_MAX_OVERFLOW more under load. A request that finds
    them all in use waits DB_POOL_TIMEOUT seconds (SQLAlchemy's default is 30) and then gets
    `sqlalchemy.exc.TimeoutError`, which `api.errors` answers with 503 and `Retry-After`: under more load than the
    database can take, clients are refused at once and told when to come back, rather than left hanging.

    Pre-ping costs a round trip (`SELECT 1`) on every checkout, i.e. on every request, to guard against a
    connection the server dropped while it sat in the pool. Over a local unix socket that happens when PostgreSQL
    restarts, and SQLAlchemy already handles it: the first statement that meets a dead connection fails (one 500,
    or one failed /api/ready probe; the healthcheck asks every 5 s), SQLAlchemy recognises the disconnect and
    invalidates the whole pool, and every later checkout opens a fresh connection.
    """
    return create_engine(
        database_url(settings),
        connect_args={"connect_timeout": 5},
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)


class DatabaseBusy(Exception):
    """No database connection came free within DB_POOL_TIMEOUT."""


class Admission:
    """Lets as many requests at the database at once as the pool has connections (DB_POOL_SIZE + DB_MAX_OVERFLOW).

    The others wait here, in the event loop and in arrival order, for at most DB_POOL_TIMEOUT, then get
    `DatabaseBusy` (answered 503 with Retry-After). Without it they would wait in the thread pool's queue (40 threads
    for every sync route) before they even reached the pool's own timeout: with 200 clients and the database slow,
    requests queued there for longer than any client waits. Holding no thread while waiting, a refusal takes
    DB_POOL_TIMEOUT at most, whatever the number of clients.
    """

    def __init__(self, slots: int, timeout: float) -> None:
        self.slots = slots
        self.timeout = timeout
        self._free = anyio.Semaphore(slots)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            self._free.acquire_nowait()
        except anyio.WouldBlock:
            with anyio.move_on_after(self.timeout) as waiting:
                await self._free.acquire()
            if waiting.cancelled_caught:
                raise DatabaseBusy(f"no database connection came free within {self.timeout:g}s") from None
        try:
            yield
        finally:
            self._free.release()
