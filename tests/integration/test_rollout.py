"""Start-first updates of a host process under a steady load: a socket service replaced beside the old one.

The load dials the service's socket for every request, as a proxy does (Caddy opens a connection per request
it cannot put on a kept-alive one), from two threads, bounded in count and time. Neither an update nor a failed
one may fail a single request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadclient import Load
from unistack.control import client as daemon_client

from .conftest import Instance

pytestmark = pytest.mark.integration

SOCKET_PY = Path(__file__).with_name("socket_service.py")

COMPOSE = """
services:
  web:
    x-unistack:
      process:
        command: ["${PYTHON}", "${SOCKET_PY}"]
        environment:
          SOCKET: ${UNISTACK_RUN_DIR}/web.sock
    environment:
      VERSION: ${VERSION:-v1}
      READY_AFTER: ${READY_AFTER:-0.3}
      NEVER_READY: ${NEVER_READY:-0}
      DRAIN: ${DRAIN:-0}
    healthcheck:
      test: ["CMD", "${PYTHON}", "${SOCKET_PY}", "check"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 3s
      start_interval: 100ms
    stop_grace_period: 5s
    deploy:
      update_config:
        order: start-first
"""


def test_start_first_update_and_failed_update_drop_no_request(instance: Instance) -> None:
    instance.env["SOCKET_PY"] = str(SOCKET_PY)
    instance.write(COMPOSE)
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    first = instance.ps()["web"]["pid"]
    sock = instance.state_dir() / "run" / "web.sock"
    with Load(unix=sock, seconds=90) as load:
        instance.wait_for(lambda: load.total() > 20, timeout=20, message="the load to be answered")
        instance.env["VERSION"] = "v2"
        result = instance.run("up", "--wait", "--wait-timeout", "30", check=True)
        assert "web: updated start-first" in result.stdout, result.stdout
        instance.wait_for(lambda: load.count("v2") > 20, timeout=20, message="v2 to answer")
        second = instance.ps()["web"]
        assert second["pid"] != first and second["state"] == "healthy" and second["update"] == ""
        # the new incarnation never passes its healthcheck: stopped, the old one keeps serving
        instance.env.update(VERSION="v3", NEVER_READY="1")
        failed = instance.run("up", "--wait", "--wait-timeout", "30")
        served = load.count("v2")
        instance.wait_for(lambda: load.count("v2") > served + 20, timeout=20, message="v2 to go on")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "web" in failed.stderr and "failed its healthcheck" in failed.stderr and "last log lines" in failed.stderr
    assert "v3 listening" in failed.stderr.partition("last log lines")[2], failed.stderr
    assert load.failures == [], load.failures[:5]
    assert load.count("v3") == 0 and load.count("v1") > 0
    ps = instance.ps()["web"]
    assert ps["pid"] == second["pid"] and ps["state"] == "healthy"
    saved = json.loads((instance.state_dir() / "project.json").read_text())
    assert saved["services"]["web"]["environment"]["VERSION"] == "v2"  # what runs, for a daemon that adopts it
    kinds = [e["message"] for e in instance.events() if e["kind"] == "update"]
    assert any("switched to the new incarnation" in m for m in kinds), kinds


def test_stop_first_stays_the_default(instance: Instance) -> None:
    instance.env["SOCKET_PY"] = str(SOCKET_PY)
    instance.write(COMPOSE.replace("order: start-first", "order: stop-first"))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    instance.env["VERSION"] = "v2"
    result = instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    assert "web: recreated" in result.stdout, result.stdout
    assert not [e for e in instance.events() if e["kind"] == "update"]


def test_a_daemon_killed_between_the_switch_and_the_old_ones_stop_is_finished_by_the_next_command(
    instance: Instance,
) -> None:
    instance.env.update(SOCKET_PY=str(SOCKET_PY), DRAIN="4")  # the old one drains 4 s: the daemon dies meanwhile
    instance.write(COMPOSE)
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    first = instance.ps()["web"]["pid"]
    with Load(unix=instance.state_dir() / "run" / "web.sock", seconds=90) as load:
        instance.wait_for(lambda: load.total() > 20, timeout=20, message="the load to be answered")
        instance.env["VERSION"] = "v2"
        argv = [sys.executable, "-m", "unistack", "up", "--wait"]
        update = subprocess.Popen(
            argv, cwd=instance.folder, env=instance.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            switched = lambda: any("switched to the new incarnation" in e["message"] for e in instance.events())  # noqa: E731
            instance.wait_for(switched, timeout=30, message="the switch")
            pid = daemon_client.pid_of(instance.state_dir())
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        finally:
            update.wait(timeout=60)
        os.kill(int(first), 0)  # killed inside the window: the old one still drains

        def finished() -> bool:
            row = instance.ps()["web"]
            return row["state"] == "healthy" and row["pid"] != first

        instance.wait_for(finished, timeout=30, message="the next command to finish the update")
        instance.wait_for(lambda: not _alive(int(first)), timeout=30, message="the old incarnation to stop")
        served = load.count("v2")
        instance.wait_for(lambda: load.count("v2") > served + 20, timeout=20, message="v2 to go on")
    assert load.failures == [], load.failures[:5]
    messages = [e["message"] for e in instance.events()]
    assert any("finished the switch" in m for m in messages), messages[-8:]
    assert instance.ps()["web"]["state"] == "healthy"


def _alive(pid: int) -> bool:
    try:  # a zombie (exited, not yet reaped by its keeper) is gone
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
