"""Load, small and fast (bench/load.py has the big counts and the figures): through the real proxy,

- 200 concurrent connections and 60 slow clients (headers or a body a byte at a time) leave an ordinary user
  served, and every request of every client is answered before the client's 10 s timeout;
- with the note table locked, 100 concurrent API clients are each served or refused with 503 + Retry-After (the
  pool exhausted past DB_POOL_TIMEOUT), none left hanging, and the API serves again once the lock is gone;
- the stack's own Caddyfile, with its timeouts shortened through PROXY_*_TIMEOUT, cuts a slowloris connection and
  an idle keep-alive connection, refuses oversized headers with 431, and never cuts a WebSocket (host processes:
  a Caddy of the test's own beside the stack's, on the same backend socket);
- with only read_body shortened, bodies trickled to /api (which reverse_proxy streams to the backend) are answered
  and cut, while an upload through the same proxy is stored (stack/README.md, Proxy: why read_body_idle is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import COMPOSE_FILE, Stack, wait_for

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT = 10.0  # the bound every request must end within: behaviour, not a speed target
HOST = "127.0.0.1"
CADDY = COMPOSE_FILE.parent / "proxy" / ".venv" / "bin" / "caddy"


async def dribble(port: int, head: bytes, until: float) -> bool:
    """Sends ``head``, then a header or body byte every 0.5 s until ``until``; True when the server cut it."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), CLIENT_TIMEOUT)
    try:
        writer.write(head)
        while time.monotonic() < until:
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(4096), 0.5) == b"":
                    return True
            writer.write(b"a")
            await writer.drain()
        return False
    except OSError:
        return True
    finally:
        writer.close()


def slowloris_head(port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Slow: ".encode()


def slow_body_head(port: int) -> bytes:
    return (
        f"POST /api/notes HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()


async def test_a_flood_and_slow_clients_leave_others_served(stack: Stack, api: httpx.Client) -> None:
    until = time.monotonic() + 3.0
    statuses: Counter[int] = Counter()
    probe: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=CLIENT_TIMEOUT, limits=limits, trust_env=False) as c:

        async def flooder(n: int) -> None:
            while time.monotonic() < until:
                statuses[(await c.get("/_proxy/health" if n % 2 else "/api/health")).status_code] += 1

        async def user() -> None:
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=CLIENT_TIMEOUT, trust_env=False) as own:
                while time.monotonic() < until:
                    probe[(await own.get("/api/notes")).status_code] += 1
                    await asyncio.sleep(0.1)

        slow = [dribble(stack.port, slowloris_head(stack.port), until) for _ in range(50)]
        slow += [dribble(stack.port, slow_body_head(stack.port), until) for _ in range(10)]
        # an error in any client (a timeout: a request left hanging past CLIENT_TIMEOUT) fails the test here
        await asyncio.gather(user(), *(flooder(n) for n in range(200)), *slow)
    assert set(statuses) == {200}, statuses
    assert set(probe) == {200}, probe  # served (how fast is bench/load.py's business)


class TableLock:
    """A psql session holding ACCESS EXCLUSIVE on the note table until `release()` (30 s idle: the server ends it)."""

    def __init__(self, stack: Stack) -> None:
        args = ["-U", "app", "-d", "app", "-qAt", "-v", "ON_ERROR_STOP=1"]
        if stack.runtime == "process":
            psql = shutil.which("psql") or "psql"
            argv = [psql, "-h", str(stack.state_dir / "run" / "db"), *args]
            password = "local-dev-only-password"  # environments/local.env
        else:
            container = f"{stack.project}-db-1"
            argv = ["docker", "exec", "-i", "-e", "PGPASSWORD", container, "psql", "-h", "/tmp/postgresql", *args]
            password = stack.env["POSTGRES_PASSWORD"]
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, "PGPASSWORD": password},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.released = False
        self.proc.stdin.write(
            "SET idle_in_transaction_session_timeout = '30s';\n"
            "BEGIN; LOCK TABLE note IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n"
        )
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "locked":
            self.released = True
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"could not lock the note table: {line!r} {err}")

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("COMMIT;\n")
                self.proc.stdin.flush()
        try:
            self.proc.communicate(timeout=30)  # reads and closes its pipes
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=30)


async def test_api_clients_are_served_or_refused_while_the_database_is_locked(stack: Stack, api: httpx.Client) -> None:
    lock = TableLock(stack)
    answers: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(
            base_url=stack.base_url,
            timeout=CLIENT_TIMEOUT,
            limits=httpx.Limits(max_connections=100),
            trust_env=False,
        ) as client:

            async def one() -> None:
                response = await client.get("/api/notes")
                answers.append(response)
                if response.status_code == 503:
                    await asyncio.to_thread(lock.release)  # the pool's connections waited on the lock: let them go

            await asyncio.gather(*(one() for _ in range(100)))  # a request past CLIENT_TIMEOUT raises here
    finally:
        lock.release()
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 503} and statuses[503] >= 1, statuses
    for refused in (r for r in answers if r.status_code == 503):
        assert refused.headers["retry-after"].isdigit(), refused.headers
        assert "busy" in refused.json()["detail"]
    assert api.get("/api/notes").status_code == 200


# --- the Caddyfile's timeouts, shortened ----------------------------------------------------------------------------


@pytest.fixture
def short_timeout_proxy(stack: Stack, tmp_path: Path) -> Iterator[int]:
    """The stack's Caddyfile in a Caddy of its own, every timeout 1 s, on the stack's backend socket."""
    with own_caddy(stack, tmp_path, dict.fromkeys(("READ_HEADER", "READ_BODY", "WRITE", "IDLE"), "1s")) as port:
        yield port


@pytest.fixture
def short_read_body_proxy(stack: Stack, tmp_path: Path) -> Iterator[int]:
    """The stack's Caddyfile in a Caddy of its own, read_body 2 s (the other timeouts as the stack has them)."""
    with own_caddy(stack, tmp_path, {"READ_BODY": "2s"}) as port:
        yield port


@contextlib.contextmanager
def own_caddy(stack: Stack, tmp_path: Path, timeouts: dict[str, str]) -> Iterator[int]:
    """The stack's Caddyfile in a Caddy of its own on the stack's backend socket, with PROXY_<NAME>_TIMEOUT set."""
    if stack.runtime != "process":
        pytest.skip("host processes only: this Caddy reaches the backend through its unix socket")
    port = _any_free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "PROXY_BIND": HOST,
        "BACKEND_UPSTREAM": f"unix/{stack.state_dir / 'run' / 'backend.sock'}",
        "FRONTEND_MODE": "static",
        "FRONTEND_DIST": str(stack.state_dir / "frontend-dist"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        **{f"PROXY_{name}_TIMEOUT": value for name, value in timeouts.items()},
    }
    log = (tmp_path / "caddy.log").open("w")
    caddy = subprocess.Popen(
        [str(CADDY), "run", "--config", "Caddyfile", "--adapter", "caddyfile"],
        cwd=CADDY.parents[2],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=5, trust_env=False) as client:
            wait_for(lambda: client.get("/_proxy/health").status_code == 200, 30, "the short-timeout Caddy to serve")
        yield port
    finally:
        caddy.terminate()
        try:
            caddy.wait(timeout=15)
        except subprocess.TimeoutExpired:
            caddy.kill()
            caddy.wait(timeout=15)
        log.close()


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


async def test_slow_headers_and_idle_connections_are_cut(short_timeout_proxy: int) -> None:
    port = short_timeout_proxy
    until = time.monotonic() + CLIENT_TIMEOUT
    assert await dribble(port, slowloris_head(port), until), "a slowloris connection was never cut"
    reader, writer = await asyncio.open_connection(HOST, port)
    try:  # a keep-alive connection answered once, then left idle
        writer.write(f"GET /_proxy/health HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), CLIENT_TIMEOUT)).startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b"", "the idle connection was not closed"
    finally:
        writer.close()


async def test_bodies_trickled_to_the_api_are_cut_and_an_upload_still_works(
    api: httpx.Client, short_read_body_proxy: int
) -> None:
    """reverse_proxy streams a body to the backend as it arrives; read_body (2 s here) still cuts one that trickles,
    well before the client's bound, and an ordinary upload through the same proxy is stored."""
    port = short_read_body_proxy
    until = time.monotonic() + CLIENT_TIMEOUT
    cut = await asyncio.gather(*(dribble(port, slow_body_head(port), until) for _ in range(5)))
    assert all(cut), f"{cut.count(False)} of 5 bodies trickled to /api were still open after {CLIENT_TIMEOUT:g} s"
    note = api.post("/api/notes", json={"title": "upload through a short read_body"}).json()
    try:
        data = os.urandom(1024 * 1024)
        upload = {"file": ("one.bin", data, "application/octet-stream")}
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=CLIENT_TIMEOUT, trust_env=False) as c:
            response = await c.post(f"/api/notes/{note['id']}/attachments", files=upload)
        assert response.status_code == 201, response.text
        assert response.json()["size"] == len(data)
    finally:
        api.delete(f"/api/notes/{note['id']}")


def test_oversized_headers_are_refused(short_timeout_proxy: int) -> None:
    with httpx.Client(base_url=f"http://{HOST}:{short_timeout_proxy}", timeout=CLIENT_TIMEOUT, trust_env=False) as c:
        assert c.get("/_proxy/health", headers={"x-big": "a" * 40_000}).status_code == 431
        assert c.get("/_proxy/health", headers={"x-fine": "a" * 8_000}).status_code == 200


def test_a_websocket_outlives_every_timeout(stack: Stack, api: httpx.Client, short_timeout_proxy: int) -> None:
    """Idle for 3 s behind a proxy whose timeouts are all 1 s, the feed is still open and still delivers."""
    url = f"ws://{HOST}:{short_timeout_proxy}/api/ws"
    with connect(url, proxy=None, open_timeout=CLIENT_TIMEOUT, close_timeout=5) as ws:
        time.sleep(3)  # the point of the test: longer than read_header, read_body, write and idle (1 s each)
        title = f"load {uuid.uuid4().hex[:8]}"
        note = api.post("/api/notes", json={"title": title, "body": ""}).json()
        try:
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while True:
                event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                if event.get("note", {}).get("id") == note["id"]:
                    break
        finally:
            api.delete(f"/api/notes/{note['id']}")
    assert event["type"] == "note.created"
