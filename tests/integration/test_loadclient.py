"""The rollout tests' load client (tests/loadclient.py) against a small loopback server: answers counted by what
``read`` makes of them, a non-200 status or an unreadable body counted as a failure with its time, a new
connection per request or one kept alive, and the bounds on count."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.loadclient import Load


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive when the client keeps it
    connections = 0  # one handler per connection: setup runs once for each

    def setup(self) -> None:
        _Handler.connections += 1
        super().setup()

    def do_GET(self) -> None:
        status, body = (500, b"down") if self.path == "/bad" else (200, b"v1\n")
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _until(ok: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def test_answers_are_counted_by_what_read_makes_of_them(port: int) -> None:
    with Load(port, read=lambda body: body.decode().strip().upper()) as load:
        _until(lambda: load.total() >= 10)
    assert load.count("V1") == load.total() >= 10 and load.failures == []
    assert load.mark() == (load.total(), 0)


def test_a_status_other_than_200_or_a_body_read_refuses_is_a_failure(port: int) -> None:
    began = time.time()
    with Load(port, "/bad", clients=1, limit=3) as load:
        _until(lambda: load.mark()[0] == 3)
    assert load.total() == 0 and len(load.failures) == 3 and load.failures[0].at >= began
    assert "answered 500" in load.failures[0].why

    def refuse(body: bytes) -> str:
        raise ValueError("not JSON")

    with Load(port, read=refuse, clients=1, limit=2) as load:
        _until(lambda: load.mark()[0] == 2)
    assert [f.why for f in load.failures] == ["ValueError: not JSON"] * 2


def test_kept_alive_one_connection_per_thread_else_one_per_request(port: int) -> None:
    _Handler.connections = 0
    with Load(port, clients=1, keep_alive=True, limit=5) as load:
        _until(lambda: load.mark()[0] == 5)
    kept, _Handler.connections = _Handler.connections, 0
    with Load(port, clients=1, limit=5) as load:
        _until(lambda: load.mark()[0] == 5)
    assert kept == 1 and _Handler.connections == 5
