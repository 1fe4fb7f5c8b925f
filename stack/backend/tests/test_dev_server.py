"""dev_server.py as the stack runs it: a real process on a unix socket, serving a tiny ASGI app written into a temp
folder, reloading it when its source changes. No database needed."""

import functools
import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.healthcheck import UnixHTTPConnection
from conftest import BACKEND_DIR

DEV_SERVER = BACKEND_DIR / "dev_server.py"
START_DEADLINE_SECONDS = 60.0  # the parent imports FastAPI, SQLAlchemy, ... once: slow on a busy machine
RELOAD_DEADLINE_SECONDS = 10.0  # a reload takes well under a second; generous for a loaded CI machine
STOP_DEADLINE_SECONDS = 15.0

APP_TEMPLATE = """import os

MESSAGE = {message!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({{"type": event["type"] + ".complete"}})
            if event["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": MESSAGE.encode()}})
"""


@dataclass
class Answer:
    status: int
    body: str
    pid: int | None


@dataclass
class DevServer:
    folder: Path
    socket_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    port: int | None = None  # TCP (--port) instead of the socket

    @property
    def module(self) -> Path:
        return self.folder / "tinyapp" / "main.py"

    def write(self, source: str) -> None:
        self.module.write_text(source)

    def write_message(self, message: str) -> None:
        self.write(APP_TEMPLATE.format(message=message))

    def get(self, path: str = "/", timeout: float = 10.0) -> Answer:
        connection: http.client.HTTPConnection
        if self.port is None:
            connection = UnixHTTPConnection(str(self.socket_path), timeout=timeout)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            pid = response.getheader("x-pid")
            return Answer(response.status, response.read().decode(), int(pid) if pid else None)
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, check: Callable[[Answer], bool], deadline_s: float) -> Answer:
        """Polls until `check` accepts an answer; fails with the server's log otherwise."""
        deadline = time.monotonic() + deadline_s
        last: Answer | str = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dev_server exited with {self.process.returncode}:\n{self.log()}")
            try:
                answer = self.get(timeout=2.0)
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if check(answer):
                    return answer
                last = answer
            time.sleep(0.02)
        pytest.fail(f"no expected answer within {deadline_s} s (last: {last}):\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"dev_server did not stop within {STOP_DEADLINE_SECONDS} s of SIGTERM:\n{self.log()}")


def start(folder: Path, *extra: str, socket_path: Path | None = None) -> DevServer:
    socket_path, log_path = socket_path or folder / "backend.sock", folder / "dev_server.log"
    command = [sys.executable, str(DEV_SERVER), "tinyapp.main:app", "--uds", str(socket_path), *extra]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    return DevServer(folder, socket_path, log_path, process)


@contextmanager
def running(folder: Path, *extra: str, message: str = "one") -> Iterator[DevServer]:
    """A dev_server with --reload on folder/tinyapp, serving `message`; stopped (and checked clean) at the end."""
    (folder / "tinyapp").mkdir(exist_ok=True)
    (folder / "tinyapp" / "__init__.py").write_text("")
    server = start(folder, "--reload", "--reload-dir", "tinyapp", *extra)
    server.write_message(message)
    try:
        server.wait_for(lambda a: a.status == 200, START_DEADLINE_SECONDS)
        yield server
    finally:
        status = server.stop()
    assert status == 0, server.log()
    assert not server.socket_path.exists(), "the socket file was left behind"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DevServer]:
    with running(tmp_path) as dev_server:
        yield dev_server


def body_is(expected: str, answer: Answer) -> bool:
    return answer.body == expected


def children(pid: int) -> list[int]:
    """Linux: the direct children of a process."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serves_the_app_on_the_socket(server: DevServer) -> None:
    answer = server.get()
    assert (answer.status, answer.body) == (200, "one")
    assert stat.S_ISSOCK(server.socket_path.lstat().st_mode)
    assert stat.S_IMODE(server.socket_path.lstat().st_mode) == 0o666  # as uvicorn --uds; the folder guards it
    assert answer.pid is not None and answer.pid != server.process.pid  # a forked worker serves, not the parent
    assert "serving tinyapp.main:app" in server.log()


def test_a_change_is_served_within_seconds_by_a_new_worker(server: DevServer) -> None:
    first = server.get()
    assert first.pid is not None
    saved = time.monotonic()
    server.write_message("two")
    answer = server.wait_for(lambda a: a.body == "two", RELOAD_DEADLINE_SECONDS)
    elapsed = time.monotonic() - saved
    assert answer.pid != first.pid
    assert not alive(first.pid), "the old worker is still running"
    assert elapsed < RELOAD_DEADLINE_SECONDS
    assert "dev_server: reloaded in " in server.log()  # one line per reload, with its timing
    assert "tinyapp/main.py" in server.log()


def test_a_file_that_is_not_python_does_not_reload(server: DevServer) -> None:
    pid = server.get().pid
    (server.folder / "tinyapp" / "notes.txt").write_text("not code")
    time.sleep(1.0)
    assert server.get().pid == pid


def test_a_syntax_error_keeps_the_parent_up_and_the_next_good_save_recovers(server: DevServer) -> None:
    server.write("def broken(:\n")
    failed = server.wait_for(lambda a: a.status == 503, RELOAD_DEADLINE_SECONDS)
    assert "SyntaxError" in failed.body
    assert "tinyapp/main.py, line 1" in failed.body
    assert server.process.poll() is None
    assert "Traceback" in server.log()
    assert "reload FAILED" in server.log()

    server.write_message("fixed")
    assert server.wait_for(lambda a: a.body == "fixed", RELOAD_DEADLINE_SECONDS).status == 200


def test_a_second_save_with_the_same_size_and_second_is_not_served_from_a_stale_pyc(server: DevServer) -> None:
    server.write_message("two")
    server.wait_for(lambda a: a.body == "two", RELOAD_DEADLINE_SECONDS)
    before = server.module.stat()
    server.write_message("six")  # same size; and the same mtime, as a save within the same second would have
    os.utime(server.module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert server.wait_for(lambda a: a.body == "six", RELOAD_DEADLINE_SECONDS).status == 200


def test_requests_during_a_reload_wait_instead_of_failing(server: DevServer) -> None:
    """The socket stays bound in the parent: a request sent while no worker serves waits in the backlog."""
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answer = server.get(timeout=10.0)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            else:
                answers.append(answer.body if answer.status == 200 else f"status {answer.status}")

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for message in ("during 1", "during 2", "during 3"):
            time.sleep(0.3)
            server.write_message(message)
            server.wait_for(functools.partial(body_is, message), RELOAD_DEADLINE_SECONDS)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
    assert set(answers) == {"one", "during 1", "during 2", "during 3"}


def test_a_worker_that_dies_is_started_again(server: DevServer) -> None:
    pid = server.get().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    answer = server.wait_for(lambda a: a.status == 200 and a.pid != pid, RELOAD_DEADLINE_SECONDS)
    assert answer.body == "one"
    assert "was killed by SIGKILL" in server.log()


def test_sigterm_stops_everything_and_removes_the_socket(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        worker = server.get().pid
        helpers = children(server.process.pid)  # the worker and the file watcher
        assert worker in helpers and len(helpers) == 2
    # running() sent SIGTERM and checked: exit status 0, the socket file removed
    assert not any(alive(pid) for pid in helpers)
    assert "SIGTERM: stopping" in server.log()
    assert "Application shutdown complete" in server.log()  # the worker stopped gracefully (lifespan shutdown)


def test_a_stale_socket_file_is_replaced_but_a_live_one_is_not_taken_over(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "backend.sock"))  # bound, never listening: what a killed server leaves behind
    stale.close()
    with running(tmp_path) as server:
        assert "removed the stale socket file" in server.log()
        second_folder = tmp_path / "second"
        second_folder.mkdir()
        intruder = start(second_folder, socket_path=server.socket_path)
        try:
            assert intruder.process.wait(START_DEADLINE_SECONDS) != 0
        finally:
            intruder.stop()
        assert "another server is listening on" in intruder.log()
        assert server.get().body == "one"  # untouched


def test_without_reload_the_parent_exits_with_a_failing_worker(tmp_path: Path) -> None:
    (tmp_path / "tinyapp").mkdir()
    (tmp_path / "tinyapp" / "__init__.py").write_text("")
    (tmp_path / "tinyapp" / "main.py").write_text(APP_TEMPLATE.format(message="one"))
    server = start(tmp_path)
    try:
        pid = server.wait_for(lambda a: a.status == 200, START_DEADLINE_SECONDS).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert server.process.wait(STOP_DEADLINE_SECONDS) != 0
    finally:
        server.stop()
    assert not server.socket_path.exists()


def test_listens_on_tcp_when_given_a_port(tmp_path: Path) -> None:
    """Containers: --host/--port instead of --uds; the same worker and reload machinery, nothing left to remove."""
    (tmp_path / "tinyapp").mkdir()
    (tmp_path / "tinyapp" / "__init__.py").write_text("")
    (tmp_path / "tinyapp" / "main.py").write_text(APP_TEMPLATE.format(message="over tcp"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "dev_server.log"
    command = [sys.executable, str(DEV_SERVER), "tinyapp.main:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--reload", "--reload-dir", "tinyapp"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    server = DevServer(tmp_path, tmp_path / "unused.sock", log_path, process, port=port)
    try:
        first = server.wait_for(lambda a: a.status == 200, START_DEADLINE_SECONDS)
        assert first.body == "over tcp"
        assert f"listening on 127.0.0.1:{port}" in server.log()
        server.write_message("reloaded over tcp")
        assert server.wait_for(lambda a: a.body == "reloaded over tcp", RELOAD_DEADLINE_SECONDS).pid != first.pid
    finally:
        status = server.stop()
    assert status == 0, server.log()


def test_uds_and_port_exclude_each_other(tmp_path: Path) -> None:
    command = [sys.executable, str(DEV_SERVER), "tinyapp.main:app", "--uds", str(tmp_path / "s"), "--port", "8000"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
