"""`unistack watch` on a real engine: a changed file is synced into the running container (as its user, ignored
files left out, deletions applied), a sync+restart rule restarts the same container, a rebuild recreates it.

The synced files live outside the build context (``./image``): a restart runs the service's setup step, which
rebuilds the image when its context changed, and a new image means a new container."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from unistack.control import client as daemon_client

from .support import remove_project_resources, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

COMPOSE = """
services:
  web:
    build:
      context: ./image
      args: {BASE: "${TEST_IMAGE}"}
    user: "1234:1234"
    init: true
    stop_grace_period: 2s
    command: ["python3", "-u", "-c", "import time; print('web started', flush=True); time.sleep(600)"]
    develop:
      watch:
        - action: sync
          path: ./site
          target: /srv/site
          ignore: [drafts/, "*.tmp"]
        - action: sync+restart
          path: ./config.txt
          target: /srv/config.txt
        - action: rebuild
          path: ./image/version.txt
"""
DOCKERFILE = "ARG BASE\nFROM ${BASE}\nCOPY version.txt /srv/version.txt\n"


class Instance:
    def __init__(self, folder: Path, name: str, image: str) -> None:
        self.folder, self.name = folder, name
        self.env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image}
        for key in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "UNISTACK_RUNTIME", "COMPOSE_PROJECT_NAME"):
            self.env.pop(key, None)
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "unistack", "-p", self.name, "--runtime", "docker", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def watch(self) -> None:
        self.proc = subprocess.Popen(
            self.argv("watch"),
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Ctrl+C as at a terminal, even when this suite runs as a background job of a shell without job
            # control, which starts it with SIGINT ignored (and Python then never raises KeyboardInterrupt)
            preexec_fn=_interruptible,
        )
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, fragment: str, after: int, timeout: float = 60) -> int:
        """The index of the first line from ``after`` on that holds ``fragment``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if fragment in self.lines[index]:
                    return index
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {fragment!r} within {timeout}s; watch printed:\n" + "\n".join(self.lines))

    def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("watch did not stop on Ctrl+C") from None
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the watch if it still runs, and read what it printed to the end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=10)

    @property
    def state_dir(self) -> Path:
        return self.folder / ".unistack" / self.name


@pytest.fixture
def instance(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Instance]:
    name = unique_name()
    (tmp_path / "image").mkdir()
    (tmp_path / "site").mkdir()
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "image/Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "image/version.txt").write_text("one\n")
    (tmp_path / "config.txt").write_text("a\n")
    (tmp_path / "site/index.html").write_text("hello\n")
    made = Instance(tmp_path, name, image)
    try:
        made.run("up", "-d", "--wait", "--wait-timeout", "120")
        running(client, f"{name}-web-1")  # --wait may answer while the image is still being built
        yield made
    finally:
        made.stop()
        made.run("down", "-v", "-t", "1", check=False)
        pid = daemon_client.pid_of(made.state_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_project_resources(client, name)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{name}-web", force=True)


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def running(client: docker.DockerClient, container: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.NotFound):
            if client.api.inspect_container(container)["State"]["Running"]:
                return
        time.sleep(0.1)
    raise AssertionError(f"{container} is not running after {timeout}s")


def in_container(client: docker.DockerClient, name: str, *argv: str) -> tuple[int, str]:
    code, output = client.containers.get(name).exec_run(list(argv))
    return int(code), output.decode().strip()


def save(path: Path, text: str) -> None:
    """As editors save: a new file renamed over the old one."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    temporary.replace(path)


def test_watch_syncs_restarts_and_rebuilds(instance: Instance, client: docker.DockerClient) -> None:
    folder, container = instance.folder, f"{instance.name}-web-1"
    first = client.api.inspect_container(container)
    instance.watch()
    at = instance.wait_for("watching 3 paths; press Ctrl+C to stop", 0)

    # sync: changed and new files, as the container's user; ignored files stay out
    (folder / "site/index.html").write_text("hello again\n")
    (folder / "site/sub").mkdir()
    (folder / "site/sub/new.txt").write_text("new\n")
    (folder / "site/skip.tmp").write_text("left out by the rule's ignore\n")
    (folder / "site/drafts").mkdir()
    (folder / "site/drafts/x.html").write_text("left out by the rule's ignore\n")
    at = instance.wait_for("synced 2 files to web", at)
    assert in_container(client, container, "cat", "/srv/site/index.html") == (0, "hello again")
    assert in_container(client, container, "stat", "-c", "%u:%g", "/srv/site/sub", "/srv/site/sub/new.txt") == (
        0,
        "1234:1234\n1234:1234",
    )
    assert in_container(client, container, "ls", "-A", "/srv/site") == (0, "index.html\nsub")

    # a deleted file is deleted in the container
    (folder / "site/index.html").unlink()
    at = instance.wait_for("synced 1 file to web (1 deleted)", at + 1)
    assert in_container(client, container, "ls", "-A", "/srv/site") == (0, "sub")

    # sync+restart: the same container, started again, with the file; twice, saved as editors save
    for text in ("b", "c"):
        save(folder / "config.txt", f"{text}\n")
        at = instance.wait_for("restarted web", at + 1)
        assert in_container(client, container, "cat", "/srv/config.txt") == (0, text)
    again = client.api.inspect_container(container)
    assert again["Id"] == first["Id"] and again["State"]["StartedAt"] != first["State"]["StartedAt"]

    # rebuild: a new image and a new container made from it
    (folder / "image/version.txt").write_text("two\n")
    instance.wait_for(f"rebuilt {instance.name}-web; recreated web", at + 1, timeout=180)
    assert client.api.inspect_container(container)["Id"] != first["Id"]
    assert in_container(client, container, "cat", "/srv/version.txt") == (0, "two")

    assert instance.interrupt() == 0
    assert instance.lines[-1] == "stopped watching"
