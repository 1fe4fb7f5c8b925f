"""The supervisor daemon SIGKILLed in the middle of a command on the docker runtime, through the real CLI: during an
``up`` (an image build running), a ``restart`` (a container waiting out its grace period) and a ``down``
(dependents first, one waiting out its grace period). The next command finishes the work, and never is a container
of the instance left that the daemon's state does not record, nor one running (or a network left) after the
finished ``down``. The host-process half is tests/integration/test_faults.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from unistack.control import client as daemon_client

from .support import remove_project_resources, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

# ready once /tmp/ready exists; IGNORE_TERM=1: SIGTERM is ignored (a stop waits out the grace period)
PROGRAM = (
    "import os, signal, time\n"
    "os.environ.get('IGNORE_TERM') and signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "time.sleep(0.3); open('/tmp/ready', 'w').close()\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)
CHECK = """    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_interval: 200ms
"""


def service(name: str, *, image: str = "${TEST_IMAGE}", extra: str = "", ignore_term: bool = False) -> str:
    env = "    environment:\n      IGNORE_TERM: '1'\n" if ignore_term else ""
    return f"""
  {name}:
    image: {image}
    command: ["python3", "-u", "-c", {json.dumps(PROGRAM)}]
    init: true
{extra}{CHECK}{env}"""


class Instance:
    """One project on the docker runtime in a temp folder, driven through the real CLI."""

    def __init__(self, folder: Path, name: str, image: str, client: docker.DockerClient) -> None:
        self.folder, self.name, self.client = folder, name, client
        self.env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image}
        for key in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "UNISTACK_RUNTIME", "COMPOSE_PROJECT_NAME"):
            self.env.pop(key, None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "unistack", "-p", self.name, "--runtime", "docker", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ps(self) -> dict[str, dict[str, Any]]:
        return {row["service"]: row for row in json.loads(self.run("ps", "--format", "json").stdout)}

    @property
    def state_dir(self) -> Path:
        return self.folder / ".unistack" / self.name

    def saved(self) -> dict[str, Any] | None:
        path = self.state_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def events(self, kind: str | None = None, service: str | None = None) -> list[dict[str, Any]]:
        path = self.state_dir / "logs" / "events.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        return [e for e in rows if (kind is None or e["kind"] == kind) and (service is None or e["service"] == service)]

    def containers(self, running_only: bool = False) -> dict[str, str]:
        """Containers labelled with this project: id -> service."""
        label: dict[str, str | list[str] | bool] = {"label": f"com.docker.compose.project={self.name}"}
        return {
            str(c.id): c.labels.get("com.docker.compose.service", "")
            for c in self.client.containers.list(all=not running_only, filters=label)
        }

    def exists(self, container: str) -> bool:
        try:
            self.client.containers.get(container)
        except docker.errors.NotFound:
            return False
        return True

    def networks(self) -> list[str]:
        return [
            str(n.name) for n in self.client.networks.list(filters={"label": f"com.docker.compose.project={self.name}"})
        ]

    def untracked(self) -> dict[str, str]:
        """Containers of the project that the daemon's state does not record (a few tries: a save follows each
        start within a moment)."""
        left: dict[str, str] = {}
        for _ in range(20):
            saved = self.saved() or {}
            recorded = {(info.get("record") or {}).get("id") for info in (saved.get("services") or {}).values()}
            left = {ident: name for ident, name in self.containers().items() if ident not in recorded}
            if not left:
                return {}
            time.sleep(0.1)
        return left

    def kill_daemon(self) -> None:
        pid = daemon_client.pid_of(self.state_dir)
        assert pid is not None, "no daemon runs"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: daemon_client.pid_of(self.state_dir) != pid, 10, f"daemon {pid} gone")


def wait_for(what: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def interrupted(command: subprocess.Popen[str]) -> None:
    """The command lost its daemon: it ends with an error (killed if it does not within 30 s)."""
    try:
        assert command.wait(timeout=30) != 0
    finally:
        command.kill()
        command.communicate()


@pytest.fixture
def instance(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Instance]:
    name = unique_name()
    made = Instance(tmp_path, name, image, client)
    try:
        yield made
    finally:
        made.run("down", "-v", "-t", "1", check=False)
        pid = daemon_client.pid_of(made.state_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_project_resources(client, name)
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client.images.remove(f"{name}-db:latest", force=True)


def test_daemon_killed_during_up_is_finished_by_the_next_command(instance: Instance, image: str) -> None:
    # db's image is still building (its setup step) when the daemon dies: the next daemon builds it again, starts
    # db, then api; a marker of its own makes the build new each run (no cached layer)
    (instance.folder / "db").mkdir()
    (instance.folder / "db" / "Dockerfile").write_text(f"FROM {image}\nRUN echo {uuid.uuid4().hex} && sleep 3\n")
    instance.folder.joinpath("compose.yaml").write_text(
        "services:"
        + service("db", image=f"{instance.name}-db:latest", extra="    build: ./db\n")
        + service("api", extra="    depends_on:\n      db: {condition: service_healthy}\n")
    )
    up = instance.start("up", "-d")
    try:
        build_log = instance.state_dir / "logs" / "db.build.log"
        step = wait_for(lambda: build_log.exists() and re.search(r"Running in (\w+)", build_log.read_text()), 60, "")
        instance.kill_daemon()
    finally:
        up.kill()
        up.communicate()
    assert instance.containers() == {}  # nothing was started yet
    # the engine cancels a build whose client is gone: its step's container goes too
    wait_for(lambda: not instance.exists(step[1]), 30, f"the build step's container {step[1]} removed")
    wait_for(
        lambda: (rows := instance.ps()) and all(row["state"] == "healthy" for row in rows.values()),
        90,
        "db and api healthy",
    )
    assert sorted(instance.containers(running_only=True).values()) == ["api", "db"]
    assert instance.untracked() == {}


def test_daemon_killed_during_restart_is_finished_by_the_next_command(instance: Instance) -> None:
    # the api ignores SIGTERM, so its restart waits out its grace period: the daemon dies meanwhile, and the next
    # one stops the old incarnation (its grace period again) and starts a new one
    instance.folder.joinpath("compose.yaml").write_text(
        "services:" + service("api", extra="    stop_grace_period: 3s\n", ignore_term=True)
    )
    instance.run("up", "-d", "--wait", "--wait-timeout", "60")
    old = instance.ps()["api"]["started_at"]
    restart = instance.start("restart", "api")
    try:
        wait_for(lambda: instance.events("stopping", "api"), 30, "api stopping")
        # the state records the restart as begun before the stop signal goes out
        wait_for(lambda: (instance.saved() or {})["services"]["api"]["restarting"], 10, "the restart saved as begun")
        assert instance.saved()["services"]["api"]["restart_cause"] == "requested"  # not recorded yet
        instance.kill_daemon()
    finally:
        interrupted(restart)
    row = wait_for(
        lambda: (r := instance.ps()["api"])["started_at"] not in (None, old) and r["state"] == "healthy" and r,
        60,
        "a new incarnation of api, healthy",
    )
    assert instance.events("stopped", "api")[-1]["message"] == "api stopped: finishing its restart"
    assert [r["cause"] for r in row["restarts_recent"]] == ["requested"]  # recorded once, by the next daemon
    assert list(instance.containers(running_only=True)) == [row["container"]]
    assert instance.untracked() == {}


def test_daemon_killed_during_down_is_finished_by_the_next_command(instance: Instance) -> None:
    # dependents first: web waits out its grace period (it ignores SIGTERM) while db still runs, and the daemon
    # dies then; the next command must not keep db (or anything) running
    instance.folder.joinpath("compose.yaml").write_text(
        "services:"
        + service("db")
        + service(
            "web",
            extra="    stop_grace_period: 3s\n    depends_on:\n      db: {condition: service_healthy}\n",
            ignore_term=True,
        )
    )
    instance.run("up", "-d", "--wait", "--wait-timeout", "60")
    assert sorted(instance.containers(running_only=True).values()) == ["db", "web"]
    assert instance.networks()
    down = instance.start("down")
    try:
        wait_for(lambda: instance.events("stopping", "web"), 30, "web stopping")
        wait_for(lambda: (instance.saved() or {})["down"], 10, "the down saved as begun")
        instance.kill_daemon()
    finally:
        interrupted(down)
    assert instance.containers(running_only=True)  # db at least: the down was cut short
    assert instance.ps() == {}  # the next command finishes the down: nothing is up
    assert instance.containers() == {}  # stopped and removed
    assert instance.networks() == []
    assert instance.saved() is None
    assert any("finishing the `down`" in e["message"] for e in instance.events())
