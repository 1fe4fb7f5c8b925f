"""uvicorn's access log leaves out the healthcheck's successful `/api/ready` and keeps everything else: the
filter on records, then the backend as the stack runs it (uvicorn in a child process, probed with
`python -m app.healthcheck`), with its database up and with it away (503, logged)."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.access_log import ReadyProbeFilter
from app.healthcheck import probe
from conftest import BACKEND_DIR
from test_server import running_backend

DEADLINE_SECONDS = 20.0
UNREACHABLE_DATABASE = "postgresql+psycopg://app:app@127.0.0.1:1/app"  # port 1: refused at once


def access_record(method: str, path: str, status: int) -> logging.LogRecord:
    args = ("127.0.0.1:5000", method, path, "1.1", status)
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)


@pytest.mark.parametrize(
    ("method", "path", "status", "logged"),
    [
        ("GET", "/api/ready", 200, False),
        ("HEAD", "/api/ready", 200, False),
        ("GET", "/api/ready?from=probe", 200, False),
        ("GET", "/api/ready", 503, True),  # a failure stays visible
        ("GET", "/api/ready", 500, True),
        ("POST", "/api/ready", 200, True),
        ("GET", "/api/health", 200, True),
        ("GET", "/api/readyz", 200, True),
        ("GET", "/api/notes", 200, True),
    ],
)
def test_filter(method: str, path: str, status: int, logged: bool) -> None:
    assert ReadyProbeFilter().filter(access_record(method, path, status)) is logged


def test_a_record_of_another_shape_is_logged() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "something %s", ("else",), None)
    assert ReadyProbeFilter().filter(record) is True


def healthcheck(socket_path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.healthcheck", str(socket_path), "/api/ready"]
    return subprocess.run(command, cwd=BACKEND_DIR, capture_output=True, text=True, timeout=10)


def test_the_healthchecks_probes_are_not_logged(database_url: str, tmp_path: Path) -> None:
    with running_backend(tmp_path, DATABASE_URL=database_url) as server:
        for _ in range(3):
            assert healthcheck(server.socket_path).returncode == 0
        with server.http() as http:
            assert http.get("/api/health").status_code == 200
        log_text = wait_for(server.log_path, '"GET /api/health HTTP/1.1" 200')
    assert "/api/ready" not in log_text, log_text


def test_a_failed_readiness_probe_is_logged(tmp_path: Path) -> None:
    socket_path, log_path = tmp_path / "backend.sock", tmp_path / "backend.log"
    env = {**os.environ, "DATABASE_URL": UNREACHABLE_DATABASE, "UPLOADS_DIR": str(tmp_path / "uploads")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--uds", str(socket_path)],
            cwd=BACKEND_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if probe(str(socket_path), "/api/ready")[0] == 503:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"no 503 from /api/ready in {DEADLINE_SECONDS}s:\n{log_path.read_text()}"
            )
            time.sleep(0.05)
        assert healthcheck(socket_path).returncode == 1
        wait_for(log_path, '"GET /api/ready HTTP/1.1" 503')
    finally:
        process.terminate()
        process.wait(10)


def wait_for(log_path: Path, text: str) -> str:
    """The log once it holds ``text`` (the access line is written as the response starts: a moment after)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while text not in (log_text := log_path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not logged in {DEADLINE_SECONDS}s:\n{log_text}"
        time.sleep(0.02)
    return log_text
