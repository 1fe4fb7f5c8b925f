"""The dependency rule as a table: (condition, the dependency's state) -> ok, wait, or why not."""

from __future__ import annotations

import pytest

from unistack.config.model import Dependency
from unistack.engine.status import ServiceStatus, dependency_verdict
from unistack.runtimes.base import Handle

from .fakes import service

HEALTHY = Dependency(condition="service_healthy")
STARTED = Dependency(condition="service_started")
DONE = Dependency(condition="service_completed_successfully")


@pytest.mark.parametrize(
    ("want", "state", "exit_code", "has_check", "restart", "verdict"),
    [
        (STARTED, "created", None, False, "no", "wait"),
        (STARTED, "running", None, False, "no", "ok"),
        (STARTED, "starting", None, False, "no", "wait"),  # asked to start; the runtime has not returned yet
        (STARTED, "exited", 1, False, "no", "ok"),
        (HEALTHY, "starting", None, True, "no", "wait"),
        (HEALTHY, "healthy", None, True, "no", "ok"),
        (HEALTHY, "restarting", None, True, "always", "wait"),
        (HEALTHY, "unhealthy", None, True, "always", "wait"),
        (HEALTHY, "unhealthy", None, True, "no", 'unhealthy and restart is "no"'),
        (HEALTHY, "exited", 3, True, "no", "exited with code 3 before it was healthy"),
        (HEALTHY, "running", None, False, "no", "has no healthcheck"),
        (HEALTHY, "fatal", 1, True, "on-failure", "is fatal"),
        (DONE, "running", None, False, "no", "wait"),
        (DONE, "exited", 0, False, "no", "ok"),
        (DONE, "exited", 2, False, "no", "exited with code 2"),
        (DONE, "blocked", None, False, "no", "is blocked"),
    ],
)
def test_dependency_rule(
    want: Dependency, state: str, exit_code: int | None, has_check: bool, restart: str, verdict: str
) -> None:
    status = ServiceStatus("db", state=state, exit_code=exit_code)
    if state in {"running", "healthy", "unhealthy"}:  # the runtime returned an incarnation
        status.handle = Handle("db", "42", 0.0)
    got = dependency_verdict("db", want, status, service("db", healthcheck=has_check, restart=restart), True)
    assert got == verdict if verdict in {"ok", "wait"} else verdict in got


def test_missing_dependencies() -> None:
    optional = Dependency(condition="service_healthy", required=False)
    assert dependency_verdict("cache", optional, None, None, False) == "ok"
    assert "not defined" in dependency_verdict("cache", HEALTHY, None, None, False)
    idle = ServiceStatus("cache")
    assert dependency_verdict("cache", optional, idle, service("cache"), supervised=False) == "ok"
