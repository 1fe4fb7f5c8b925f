"""Instances side by side: a published port that a variable feeds moves to a free one when another instance (or
any process) holds it, a pinned one that is taken refuses to start, and a start that cannot heal fails at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.loopback import free_port

from .conftest import Instance

pytestmark = pytest.mark.integration

WEB = """services:
  web:
    ports: ["127.0.0.1:${WEB_PORT:-18999}:${WEB_PORT:-18999}"]
    environment:
      PORT: ${WEB_PORT:-18999}
      MARKER_DIR: ${UNISTACK_STATE_DIR}
    healthcheck:
      test: ["CMD-SHELL", "test -f \\"$$MARKER_DIR/web.ready\\""]
      interval: 200ms
      start_period: 20s
      start_interval: 100ms
    x-unistack:
      process:
        command: ["${PYTHON}", "${SERVICE_PY}"]
"""


def port_of(instance: Instance, project: str) -> int:
    (port,) = instance.ps(project)["web"]["ports"]
    number: int = port["host_port"]
    return number


def serves(number: int) -> bool:
    response = httpx.get(f"http://127.0.0.1:{number}/", timeout=5, trust_env=False)
    return response.status_code == 200 and response.text.startswith("web ok")


@pytest.fixture
def listener() -> Iterator[tuple[int, int]]:
    """A plain Python server on a free port, in a process of its own: (port, pid)."""
    port = free_port()
    code = (
        "import socket, sys, time\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "print('listening', flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        yield port, proc.pid
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_two_instances_come_up_side_by_side_and_the_second_keeps_its_port(instance: Instance) -> None:
    preferred = free_port()
    instance.write(WEB)
    (instance.folder / "environments").mkdir()
    instance.write(f"WEB_PORT={preferred}\n", "environments/local.env")  # a preference, not a pin

    first = instance.run("up", "--wait", "--wait-timeout", "30", project="a", check=True)
    assert f"web is reachable at http://127.0.0.1:{preferred}\n" in first.stdout
    second = instance.run("up", "--wait", "--wait-timeout", "30", project="b", check=True)
    moved = port_of(instance, "b")
    assert port_of(instance, "a") == preferred and moved != preferred
    assert f"web is reachable at http://127.0.0.1:{moved} ({preferred} is used by instance `a`)" in second.stdout
    assert serves(preferred) and serves(moved)
    # every verb sees the instance's port (the variable has it, so the service listens where it is published)
    config = instance.run("config", "--format", "json", project="b", check=True).stdout
    assert f'"published": {moved}' in config or f'"published": "{moved}"' in config

    pid = instance.ps("b")["web"]["pid"]
    again = instance.run("up", "--wait", "--wait-timeout", "30", project="b", check=True)  # kept: nothing changed
    assert instance.ps("b")["web"]["pid"] == pid and port_of(instance, "b") == moved
    assert f"http://127.0.0.1:{moved} ({preferred} is used by instance `a`)" in again.stdout
    instance.run("restart", project="b", check=True)
    instance.wait_for(lambda: instance.ps("b")["web"]["state"] == "healthy", message="b's web healthy again")
    assert port_of(instance, "b") == moved and serves(moved)

    instance.run("down", project="a", check=True)  # the preferred port is free now, but b keeps its own
    instance.run("up", "--wait", "--wait-timeout", "30", project="b", check=True)
    assert port_of(instance, "b") == moved
    instance.run("down", project="b", check=True)  # down releases it: the next up takes the preferred port
    assert not (instance.state_dir("b") / "ports.json").exists()
    instance.run("up", "--wait", "--wait-timeout", "30", project="b", check=True)
    assert port_of(instance, "b") == preferred and serves(preferred)


def test_a_pinned_port_that_is_taken_fails_before_anything_starts(
    instance: Instance, listener: tuple[int, int]
) -> None:
    port, pid = listener
    instance.write(WEB)
    instance.env["WEB_PORT"] = str(port)  # set in the shell: a pin
    result = instance.run("up", "--wait", "--wait-timeout", "30")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"web cannot publish 127.0.0.1:{port}/tcp: process {pid} (python" in result.stderr
    assert "stop it, or set WEB_PORT to a free port" in result.stderr
    state_dir = instance.state_dir()
    assert not (state_dir / "state.json").exists() and not (state_dir / "logs" / "web.log").exists()


def test_a_literal_port_that_is_taken_fails_before_anything_starts(
    instance: Instance, listener: tuple[int, int]
) -> None:
    port, pid = listener
    instance.write(WEB.replace("${WEB_PORT:-18999}", str(port)))  # a number in the file: pinned
    result = instance.run("up", "--wait", "--wait-timeout", "30")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"process {pid} (python" in result.stderr
    assert "publish another host port in services.web.ports" in result.stderr


def test_a_command_that_does_not_exist_is_fatal_at_once_and_dependents_name_it(instance: Instance) -> None:
    missing = Path("/nonexistent/bin/web-server")
    chain = """
  app:
    depends_on: [web]
    restart: on-failure:5
    x-unistack:
      process:
        command: ["${PYTHON}", "${SERVICE_PY}"]
  edge:
    depends_on: [app]
    x-unistack:
      process:
        command: ["${PYTHON}", "${SERVICE_PY}"]
"""
    instance.write(
        WEB.replace('["${PYTHON}", "${SERVICE_PY}"]', f'["{missing}"]').replace(
            "    x-unistack:", "    restart: on-failure:5\n    x-unistack:", 1
        )
        + chain
    )
    result = instance.run("up", "--wait", "--wait-timeout", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    reason = f"could not start: command not found: '{missing}' (x-unistack.process.command)"
    assert f"web failed: web is fatal; {reason}" in lines
    assert f"app failed: app is blocked; dependency web is fatal ({reason})" in lines
    assert "edge failed: edge is blocked; dependency app is blocked" in lines
    rows = instance.ps()
    assert rows["web"]["state"] == "fatal" and rows["web"]["restarts"] == 0
    kinds = [e["kind"] for e in instance.events() if e.get("service") == "web"]
    assert "restarting" not in kinds and kinds.count("fatal") == 1 and "error" not in kinds
