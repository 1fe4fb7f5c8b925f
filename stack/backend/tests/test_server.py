"""The backend as the stack runs it: `uvicorn app.main:app --uds ...` in a child process, probed with
`python -m app.healthcheck`, and two real WebSocket clients receiving every note event."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from websockets.sync.client import ClientConnection, unix_connect

from app.healthcheck import probe
from conftest import BACKEND_DIR

START_DEADLINE_SECONDS = 20.0
RECEIVE_TIMEOUT_SECONDS = 5.0
UPLOAD_LIMIT = 100_000


class Server:
    def __init__(self, socket_path: Path, log_path: Path, process: subprocess.Popen[bytes]) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.process = process

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)), base_url="http://backend")

    def websocket(self) -> ClientConnection:
        return unix_connect(str(self.socket_path), "ws://backend/api/ws", open_timeout=RECEIVE_TIMEOUT_SECONDS)

    def healthcheck(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "app.healthcheck", *args]
        return subprocess.run(command, cwd=BACKEND_DIR, capture_output=True, text=True, timeout=10)


@contextmanager
def running_backend(folder: Path, **env: str) -> Iterator[Server]:
    """`uvicorn app.main:app --uds folder/backend.sock` until ready; on exit SIGTERM, and a clean shutdown checked."""
    socket_path, log_path = folder / "backend.sock", folder / "backend.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--uds", str(socket_path)],
            cwd=BACKEND_DIR,
            env={**os.environ, "UPLOADS_DIR": str(folder / "uploads"), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(socket_path, log_path, process)
    try:
        wait_until_ready(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log_text = log_path.read_text()
    assert process.returncode in (0, -signal.SIGTERM), log_text  # uvicorn re-raises the signal once shut down
    assert "Application shutdown complete" in log_text, log_text
    assert "Traceback" not in log_text, log_text


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    with running_backend(folder, DATABASE_URL=database_url, MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT)) as server:
        yield server


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"the backend exited with {server.process.returncode}:\n{server.log_path.read_text()}")
        try:
            if probe(str(server.socket_path), "/api/ready")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the backend was not ready in {START_DEADLINE_SECONDS}s:\n{server.log_path.read_text()}")
        time.sleep(0.05)


def accepts_connections(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def receive(websocket: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(websocket.recv(timeout=RECEIVE_TIMEOUT_SECONDS))
    return event


def test_healthcheck_command(server: Server, tmp_path: Path) -> None:
    ready = server.healthcheck(str(server.socket_path), "/api/ready")
    assert ready.returncode == 0
    assert ready.stdout.startswith('200 {"status":"ready"')

    missing = server.healthcheck(str(server.socket_path), "/api/missing")
    assert (missing.returncode, missing.stdout.strip()) == (1, '404 {"detail":"Not Found"}')

    nobody = server.healthcheck(str(tmp_path / "nobody.sock"), "/api/ready")
    assert nobody.returncode == 1
    assert nobody.stdout.startswith("unreachable: ")

    assert server.healthcheck("one", "two", "three").returncode == 1  # usage


def test_every_client_receives_every_event(server: Server) -> None:
    with server.http() as http, server.websocket() as first, server.websocket() as second:
        note = http.post("/api/notes", json={"title": "live", "body": "one"}).json()
        for client in (first, second):
            assert receive(client) == {"type": "note.created", "note": note}

        updated = http.patch(f"/api/notes/{note['id']}", json={"body": "two"}).json()
        for client in (first, second):
            assert receive(client) == {"type": "note.updated", "note": updated}

        attachment = http.post(f"/api/notes/{note['id']}/attachments", files={"file": ("a.txt", b"a")}).json()
        for client in (first, second):
            event = receive(client)
            assert event["type"] == "note.updated"
            assert event["note"]["attachments"] == [attachment]

        assert http.delete(f"/api/notes/{note['id']}").status_code == 204
        for client in (first, second):
            assert receive(client) == {"type": "note.deleted", "id": note["id"]}


def test_an_upload_far_over_the_limit_gets_the_json_413(server: Server) -> None:
    with server.http() as http:
        note = http.post("/api/notes", json={"title": "big"}).json()
        response = http.post(f"/api/notes/{note['id']}/attachments", files={"file": ("big.bin", b"x" * 5_000_000)})
        assert response.status_code == 413
        assert response.json() == {"detail": f"The file is larger than the limit of {UPLOAD_LIMIT} bytes."}
        assert http.get(f"/api/notes/{note['id']}").json()["attachments"] == []


def test_a_client_leaving_does_not_disturb_the_others(server: Server) -> None:
    with server.http() as http, server.websocket() as staying:
        with server.websocket() as leaving:
            leaving.send("clients may talk; the server ignores it")
        abrupt = server.websocket()
        abrupt.socket.close()  # no close handshake at all

        note = http.post("/api/notes", json={"title": "after they left"}).json()
        assert receive(staying) == {"type": "note.created", "note": note}
        assert http.get("/api/health").json() == {"status": "ok"}


def test_debugger_port_is_released_with_the_process(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with running_backend(tmp_path, DATABASE_URL=database_url, DEBUGPY_LISTEN=str(port)):
        assert accepts_connections(port)
    assert not accepts_connections(port)  # no debug adapter left behind holding it


def test_importing_the_app_module_reads_no_settings() -> None:
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    command = [sys.executable, "-c", "import app.main, app.api.main, app.healthcheck"]
    assert subprocess.run(command, cwd=BACKEND_DIR, env=env, capture_output=True).returncode == 0
    command = [sys.executable, "-c", "from app.main import app"]
    failed = subprocess.run(command, cwd=BACKEND_DIR, env=env, capture_output=True, text=True)
    assert "SettingsError: The backend's settings are invalid (DATABASE_URL: Field required)" in failed.stderr
