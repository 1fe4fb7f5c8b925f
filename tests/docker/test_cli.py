"""The real CLI and daemon on the docker runtime: up, ps, a killed daemon replaced without losing containers, down."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from unistack.control import client as daemon_client

from .support import Cli, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

COMPOSE = """
services:
  db:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "echo db starting; sleep 0.5; touch /tmp/ready; exec sleep 600"]
    init: true
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      start_interval: 200ms
    volumes: [data:/data]
  web:
    image: ${TEST_IMAGE}
    command: ["python3", "-u", "-c", "import time; print('web up', flush=True); time.sleep(600)"]
    init: true
    depends_on:
      db: {condition: service_healthy}
volumes:
  data: {}
"""


@pytest.fixture
def cli(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Cli]:
    name = unique_name()
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    instance = Cli(tmp_path, name, image)
    try:
        yield instance
    finally:
        instance.finish(client)


def test_up_ps_replaced_daemon_and_down(cli: Cli, client: docker.DockerClient) -> None:
    cli.run("up", "-d", "--wait", "--wait-timeout", "60")
    rows = cli.ps()
    assert rows["db"]["health"] == "healthy"
    # the engine counts a service without a healthcheck as ready while runtime.start is still creating its
    # container (state "starting"), so --wait can return a moment early; poll until it is running
    deadline = time.monotonic() + 20
    while rows["web"]["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = cli.ps()
    assert rows["web"]["state"] == "running"
    containers = {service: row["container"] for service, row in rows.items()}
    assert client.containers.get(containers["web"]).name == f"{cli.name}-web-1"

    pid = daemon_client.pid_of(cli.state_dir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while daemon_client.pid_of(cli.state_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = cli.ps()  # a new daemon re-adopts the running containers
    assert {service: row["container"] for service, row in rows.items()} == containers
    events = (cli.state_dir / "logs" / "events.jsonl").read_text()
    assert '"kind": "adopted"' in events
    assert "web up" in cli.run("logs", "web").stdout

    result = cli.run("down", "-v")
    assert "volumes removed" in result.stdout
    label = {"label": f"com.docker.compose.project={cli.name}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
    assert client.volumes.list(filters=label) == []


SEMANTICS = """
x-unistack:
  notify:
    - command: ["sh", "-c", 'cat >> "$$0"', "${ALERTS}"]
services:
  api:
    image: ${TEST_IMAGE}
    # ready 0.3 s after each start; `rm /tmp/ready` (from outside) makes it unhealthy until it is restarted
    command: ["sh", "-c", "sleep 0.3; touch /tmp/ready; exec sleep 600"]
    init: true
    restart: always
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_interval: 200ms
    x-unistack:
      restart: {backoff_initial: 200ms, backoff_max: 1s}
  crashy:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "echo crashing now; exit 3"]
    restart: on-failure:2
    x-unistack:
      restart: {backoff_initial: 200ms, backoff_max: 1s}
  web:
    image: ${TEST_IMAGE}
    command: ["python3", "-u", "-c", "import time; print('web up', flush=True); time.sleep(600)"]
    init: true
    stop_grace_period: 1s
    depends_on:
      api: {condition: service_healthy}
"""


def _wait(what: Any, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def test_unhealthy_containers_heal_a_crash_loop_goes_fatal_and_notifies(
    cli: Cli, client: docker.DockerClient, tmp_path: Path
) -> None:
    (tmp_path / "compose.yaml").write_text(SEMANTICS)
    cli.env["ALERTS"] = str(tmp_path / "alerts.jsonl")
    cli.run("up", "-d")
    rows = _wait(lambda: (r := cli.ps()) and r["api"]["state"] == "healthy" and r, 60, "api healthy")
    first_start = rows["api"]["started_at"]
    assert rows["api"]["last_check"]["ok"] is True

    # unhealthy: the engine (not Docker) restarts the container, and it heals
    container = client.containers.get(f"{cli.name}-api-1")
    container.exec_run(["rm", "-f", "/tmp/ready"])
    healed = _wait(
        lambda: (r := cli.ps()) and r["api"]["state"] == "healthy" and r["api"]["started_at"] != first_start and r,
        60,
        "api restarted and healthy again",
    )
    assert healed["api"]["restarts"] >= 1
    assert healed["api"]["container"] == container.id  # the same container, started again: its log goes on

    # a crash loop spends its budget (on-failure:2): fatal, and the notifier gets the event with the last logs
    fatal = _wait(lambda: (r := cli.ps()) and r["crashy"]["state"] == "fatal" and r, 60, "crashy fatal")
    assert fatal["crashy"]["exit_code"] == 3
    alerts = _wait(lambda: (tmp_path / "alerts.jsonl").exists() and (tmp_path / "alerts.jsonl").read_text(), 30, "")
    event = json.loads(alerts.splitlines()[0])
    assert (event["event"], event["service"], event["exit_code"]) == ("service_fatal", "crashy", 3)
    assert any("crashing now" in line for line in event["last_logs"]), event

    # stop in reverse dependency order: web (depends on api) before api
    cli.run("stop")
    events = [json.loads(line) for line in (cli.state_dir / "logs" / "events.jsonl").read_text().splitlines()]
    stopped = [e["service"] for e in events if e["kind"] == "stopped" and e["service"] in ("web", "api")]
    assert stopped[-2:] == ["web", "api"], stopped


REBUILT = """
services:
  app:
    build: ./app
    command: ["sh", "-c", "cat /marker; exec sleep 600"]
    init: true
"""


def test_up_on_a_running_instance_recreates_what_a_new_image_or_build_context_changes(
    cli: Cli, client: docker.DockerClient, image: str
) -> None:
    (cli.folder / "compose.yaml").write_text(REBUILT)
    context = cli.folder / "app"
    context.mkdir()
    images = [f"{cli.name}-app"]

    def marker(text: str) -> None:
        (context / "Dockerfile").write_text(f"FROM {image}\nRUN echo {text} > /marker\n")

    def container() -> str:
        return str(cli.ps()["app"]["container"])

    try:
        marker("first")
        cli.run("up", "-d", "--wait", "--wait-timeout", "120")
        first = container()
        assert "app" not in cli.run("up", "-d").stdout.replace("app is", "")  # nothing changed: left alone
        assert container() == first

        images.append(client.images.get(f"{cli.name}-app").id)  # untagged by the rebuild
        marker("second")  # the context changed: up builds the new image, then replaces the container
        result = cli.run("up", "-d", "--wait", "--wait-timeout", "120", timeout=300)
        assert f"app: recreated (the build context of {cli.name}-app changed)" in result.stdout, result.stdout
        second = container()
        assert second != first

        images.append(client.images.get(f"{cli.name}-app").id)
        marker("third")
        cli.run("build", "app", timeout=300)  # built by hand: the running container is now outdated
        result = cli.run("up", "-d", "--wait", "--wait-timeout", "120")
        assert f"app: recreated (its image {cli.name}-app was rebuilt)" in result.stdout, result.stdout
        assert container() not in (first, second)
        deadline = time.monotonic() + 20
        while "third" not in cli.run("logs", "app").stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "third" in cli.run("logs", "app").stdout
    finally:
        cli.run("down", "-t", "1", check=False)
        for ref in images:
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                client.images.remove(ref, force=True)
