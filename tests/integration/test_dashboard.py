"""`unistack dashboard` on a real instance of host processes: it refuses an instance that is not up, prints its
address, serves the services, restarts one through a POST, and keeps answering while the daemon is SIGKILLed and
replaced (by `unistack ps`), its stream saying the daemon went away and came back."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.dashboard_process import DashboardProcess

from .conftest import Instance

pytestmark = pytest.mark.integration

COMPOSE = """
services:
  db:
    x-unistack:
      process:
        command: ["sh", "-c", "while true; do echo db tick; sleep 0.5; done"]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 300ms
  web:
    x-unistack:
      process:
        command: ["sh", "-c", "echo web up; exec sleep 600"]
    depends_on:
      db: {condition: service_healthy}
"""


@pytest.fixture
def dashboard(instance: Instance) -> Iterator[DashboardProcess]:
    instance.write(COMPOSE)
    instance.run("up", "--wait", check=True)
    running = DashboardProcess([], instance.folder, instance.env, instance.folder / "dashboard.stderr")
    try:
        yield running
    finally:
        running.stop()


class Daemons:
    """The ``daemon`` messages of /api/stream, read in a thread."""

    def __init__(self, dashboard: DashboardProcess) -> None:
        self.seen: list[dict[str, Any]] = []
        self.client = dashboard.client(with_token=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = ""
        try:
            with self.client.stream("GET", "/api/stream") as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name == "daemon":
                        self.seen.append(json.loads(line.removeprefix("data: ")))
        except httpx.HTTPError:
            pass


def test_the_dashboard_refuses_an_instance_that_is_not_up(instance: Instance) -> None:
    instance.write(COMPOSE)
    result = instance.run("dashboard", "--no-open")
    assert result.returncode == 2
    assert "demo is not up" in result.stderr and "unistack up" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_serves_acts_and_outlives_a_daemon_replacement(instance: Instance, dashboard: DashboardProcess) -> None:
    with dashboard.client() as bare:
        assert bare.get("/api/services").status_code == 401
    with dashboard.client(with_token=True) as api:
        services = api.get("/api/services").json()
        assert {r["service"]: r["state"] for r in services["services"]} == {"db": "healthy", "web": "running"}
        web = next(r for r in services["services"] if r["service"] == "web")
        assert web["pid"] and web["stats"]["memory_bytes"] > 0
        before = web["started_at"]

        restarted = api.post("/api/services/web/restart", headers={"Origin": dashboard.origin})
        assert restarted.status_code == 200, restarted.text
        assert {r["service"] for r in restarted.json()["services"]} == {"db", "web"}
        instance.wait_for(lambda: instance.ps()["web"]["started_at"] not in (None, before), 30, "web restarted")

        daemons = Daemons(dashboard)
        instance.wait_for(lambda: daemons.seen and daemons.seen[-1]["connected"], 30, "the stream's daemon message")
        old = daemons.seen[-1]["pid"]
        os.kill(old, signal.SIGKILL)
        instance.wait_for(lambda: not daemons.seen[-1]["connected"], 30, "the stream to say the daemon is away")
        assert api.get("/api/instance").json()["daemon"]["connected"] is False  # it still answers
        assert api.get("/api/services").status_code == 503
        instance.run("ps", check=True)  # a new daemon, which re-adopts the services
        instance.wait_for(lambda: daemons.seen[-1]["connected"], 30, "the stream to say the daemon is back")
        assert daemons.seen[-1]["pid"] not in (None, old)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {r["service"]: r["state"] for r in api.get("/api/services").json()["services"]}
            if states == {"db": "healthy", "web": "running"}:
                break
            time.sleep(0.1)
        assert states == {"db": "healthy", "web": "running"}
        daemons.client.close()
