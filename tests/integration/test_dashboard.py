"""`unistack dashboard` on a real instance of host processes: it refuses an instance that is not up, prints its
address, serves the services, restarts one through a POST, and keeps answering while the daemon is SIGKILLed and
replaced (by `unistack ps`), its stream saying the daemon went away and came back."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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
URL_LINE = re.compile(r"dashboard: (http://127\.0\.0\.1:\d+)/\?token=([A-Za-z0-9_-]+)")


class Running:
    def __init__(self, instance: Instance) -> None:
        argv = [sys.executable, "-m", "unistack", "dashboard", "--no-open", "--port", "0"]
        self.process = subprocess.Popen(
            argv, cwd=instance.folder, env={**instance.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        found = instance.wait_for(lambda: self._url() or self.process.poll() is not None, 30, "the dashboard's URL")
        assert isinstance(found, tuple), f"the dashboard exited: {self.lines}"
        self.origin, self.token = found

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _url(self) -> tuple[str, str] | None:
        for line in list(self.lines):
            if m := URL_LINE.search(line):
                return m.group(1), m.group(2)
        return None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.origin, params={"token": self.token}, timeout=30, trust_env=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def dashboard(instance: Instance) -> Iterator[Running]:
    instance.write(COMPOSE)
    instance.run("up", "--wait", check=True)
    running = Running(instance)
    try:
        yield running
    finally:
        running.stop()


class Daemons:
    """The ``daemon`` messages of /api/stream, read in a thread."""

    def __init__(self, dashboard: Running) -> None:
        self.seen: list[dict[str, Any]] = []
        self.client = dashboard.client()
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


def test_it_serves_acts_and_outlives_a_daemon_replacement(instance: Instance, dashboard: Running) -> None:
    with httpx.Client(base_url=dashboard.origin, trust_env=False, timeout=30) as bare:
        assert bare.get("/api/services").status_code == 401
    with dashboard.client() as api:
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
