"""`python -m app.healthcheck` as compose.yaml runs it in both forms of the stack: the target from the environment
(BACKEND_SOCKET for host processes, 127.0.0.1:BACKEND_PORT in containers) or an explicit one. Real HTTP servers on
a unix socket and on a free TCP port; no database needed."""

import http.client
import http.server
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.healthcheck import UnixHTTPConnection, connection_for, main, target_from
from conftest import BACKEND_DIR


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/api/ready" else 404
        body = b'{"status":"ready"}' if status == 200 else b'{"detail":"Not Found"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tcp_port() -> Iterator[int]:
    server = TCPServer(("127.0.0.1", 0), Handler)
    with serving(server):
        yield server.server_address[1]


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "backend.sock")
    with serving(UnixServer(path, Handler)):
        yield path


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("BACKEND_SOCKET", "BACKEND_PORT")}
    command = [sys.executable, "-m", "app.healthcheck", *args]
    return subprocess.run(command, cwd=BACKEND_DIR, env={**clean, **env}, capture_output=True, text=True, timeout=10)


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def test_the_target_comes_from_the_environment() -> None:
    assert target_from({"BACKEND_SOCKET": "/run/x/backend.sock", "BACKEND_PORT": "9000"}) == "/run/x/backend.sock"
    assert target_from({"BACKEND_SOCKET": "", "BACKEND_PORT": "9000"}) == "127.0.0.1:9000"
    assert target_from({}) == "127.0.0.1:8000"


def test_a_target_is_a_socket_path_or_host_and_port() -> None:
    assert isinstance(connection_for("/run/x/backend.sock"), UnixHTTPConnection)
    tcp = connection_for("backend:8000")
    assert (type(tcp), tcp.host, tcp.port) == (http.client.HTTPConnection, "backend", 8000)
    assert (connection_for("8000").host, connection_for("[::1]:8000").host) == ("127.0.0.1", "::1")
    with pytest.raises(ValueError, match="neither a socket path nor HOST:PORT"):
        connection_for("backend")


def test_containers_ask_127_0_0_1_on_backend_port(tcp_port: int) -> None:
    ready = healthcheck("/api/ready", BACKEND_PORT=str(tcp_port))
    assert (ready.returncode, ready.stdout.strip()) == (0, '200 {"status":"ready"}')
    assert healthcheck(BACKEND_PORT=str(tcp_port)).returncode == 0  # /api/ready is the default path
    missing = healthcheck("/api/missing", BACKEND_PORT=str(tcp_port))
    assert (missing.returncode, missing.stdout.strip()) == (1, '404 {"detail":"Not Found"}')


def test_host_processes_ask_backend_socket_first(unix_socket: str) -> None:
    ready = healthcheck("/api/ready", BACKEND_SOCKET=unix_socket, BACKEND_PORT=str(free_port()))
    assert ready.returncode == 0, ready.stdout + ready.stderr


def test_nobody_listening_is_unhealthy(tmp_path: Path) -> None:
    port = free_port()
    nobody = healthcheck("/api/ready", BACKEND_PORT=str(port))
    assert nobody.returncode == 1
    assert nobody.stdout.startswith(f"unreachable: 127.0.0.1:{port}")
    assert healthcheck(str(tmp_path / "nobody.sock"), "/api/ready").returncode == 1


def test_bad_usage_is_exit_1_with_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["a", "b", "c"], {}) == 1
    assert main(["api/ready"], {}) == 1  # not a path
    assert main(["backend", "/api/ready"], {}) == 1  # neither a socket nor HOST:PORT
    assert "usage: python -m app.healthcheck" in capsys.readouterr().err
