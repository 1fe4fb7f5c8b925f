"""A database pool exhausted past DB_POOL_TIMEOUT: 503 with Retry-After and a JSON detail, never a hang or a 500.

The pool is made as small as it gets (one connection, no overflow) and the test holds that connection itself, so
every request that needs the database finds none free: the one admitted waits at the pool, the others at the
admission (`core.db.Admission`), and each is refused after DB_POOL_TIMEOUT.
"""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.errors import BUSY_DETAIL, RETRY_AFTER_SECONDS
from app.core.config import Settings
from app.core.db import Admission, DatabaseBusy, make_engine
from app.main import create_app

POOL_TIMEOUT = 0.2


@pytest.fixture
def busy_client(settings: Settings, empty_database: None) -> Iterator[TestClient]:
    small = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": POOL_TIMEOUT})
    with TestClient(create_app(small)) as test_client:
        yield test_client


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.resources.engine  # type: ignore[attr-defined]
    return engine


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": BUSY_DETAIL}
    assert response.headers["cache-control"] == "no-store"


def test_the_engine_takes_the_pool_bounds_from_the_settings(settings: Settings) -> None:
    engine = make_engine(settings.model_copy(update={"db_pool_size": 3, "db_max_overflow": 4, "db_pool_timeout": 1.5}))
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 4  # type: ignore[attr-defined]
        assert engine.pool.timeout() == 1.5  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_reads_and_writes_are_refused_with_503_while_every_connection_is_in_use(busy_client: TestClient) -> None:
    with engine_of(busy_client).connect():  # the pool's only connection
        assert_busy(busy_client.get("/api/notes"))
        assert_busy(busy_client.post("/api/notes", json={"title": "refused", "body": ""}))
        assert busy_client.get("/api/health").status_code == 200  # asks nothing of the database
    # the connection is back: the same requests are served, and the refused write left nothing behind
    assert busy_client.get("/api/notes").json() == []
    assert busy_client.post("/api/notes", json={"title": "served", "body": ""}).status_code == 201


def test_concurrent_clients_are_each_served_or_refused(busy_client: TestClient) -> None:
    """20 clients at once on one connection held by the test: every one answered 503, none waits for the holder;
    then, released, the same 20 at once are each served or refused (never a 500)."""
    holder = engine_of(busy_client).connect()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda _: busy_client.get("/api/notes"), range(20)))
    finally:
        holder.close()
    for answer in answers:
        assert_busy(answer)

    start = threading.Barrier(20)

    def read(_: int) -> httpx.Response:
        start.wait(timeout=10)
        return busy_client.get("/api/notes")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(read, range(20)))
    for answer in answers:
        if answer.status_code != 200:
            assert_busy(answer)


@pytest.mark.anyio
async def test_admission_refuses_after_the_timeout_and_admits_again_once_a_slot_is_free() -> None:
    admission = Admission(slots=2, timeout=0.05)
    async with admission.slot(), admission.slot():
        with pytest.raises(DatabaseBusy, match=r"within 0\.05s"):
            async with admission.slot():
                pass
    async with admission.slot():
        pass


@pytest.mark.anyio
async def test_admission_without_a_timeout_admits_while_a_slot_is_free() -> None:
    admission = Admission(slots=1, timeout=0)
    async with admission.slot():
        with pytest.raises(DatabaseBusy):
            async with admission.slot():
                pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
