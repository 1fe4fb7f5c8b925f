"""A service killed from outside, with real host processes through the real CLI and daemon: its events say what is
known (the signal that killed it; why its exit code is unknown when the daemon re-adopted it and so is not its
parent), never "None"; and ``validate``'s flapping check counts the supervisor's restarts after such a kill, not a
``restart`` someone asked for."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

COMPOSE = """
services:
  api:
    restart: always
    x-unistack:
      process:
        command: ["${PYTHON}", "-c", "import time; time.sleep(600)"]
"""


def pid_of(instance: Instance) -> int:
    pid = instance.wait_for(lambda: instance.ps()["api"]["pid"], message="api's pid")
    return int(pid)


def exits(instance: Instance) -> list[str]:
    return [e["message"] for e in instance.events() if e["kind"] == "exited" and e["service"] == "api"]


def kill(instance: Instance, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    instance.wait_for(lambda: instance.ps()["api"]["pid"] not in (None, pid), message="api started again")


def flapping(instance: Instance) -> dict[str, str]:
    result = instance.run("validate", "--format", "json", timeout=60)
    check = next(r for r in json.loads(result.stdout) if r["name"] == "api not flapping")
    return {"verdict": check["verdict"], "detail": check["detail"]}


def test_a_sigkilled_service_is_said_killed_and_a_readopted_one_unknown(instance: Instance) -> None:
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)
    kill(instance, pid_of(instance))
    assert exits(instance) == ["api was killed by signal 9 (SIGKILL, exit code 137)"]
    # a new daemon re-adopts api: not its parent, it never hears its exit status
    daemon = int(json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"])
    os.kill(daemon, signal.SIGKILL)
    instance.wait_for(lambda: not psutil.pid_exists(daemon) or psutil.Process(daemon).status() == "zombie")
    kill(instance, pid_of(instance))
    assert exits(instance)[1:] == ["api exited (exit code unknown: not a child of this daemon)"]
    assert not [e for e in instance.events() if "None" in e["message"]]


def test_a_requested_restart_is_not_flapping_and_a_kill_is(instance: Instance) -> None:
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)
    first = pid_of(instance)
    instance.run("restart", "api", check=True)
    assert pid_of(instance) != first
    assert flapping(instance)["verdict"] == "pass", flapping(instance)
    row = instance.ps()["api"]
    assert [r["cause"] for r in row["restarts_recent"]] == ["requested"] and row["restarted_at"] == []
    kill(instance, pid_of(instance))
    check = flapping(instance)
    assert check["verdict"] == "fail" and "restarted 1 time(s)" in check["detail"], check
