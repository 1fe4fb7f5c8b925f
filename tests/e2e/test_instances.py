"""Two instances of the real stack's local environment side by side (host processes), with no port given: the
second one's proxy gets a free port of its own (HTTP_PORT=8080 in environments/local.env is a preference, not a
pin), and both serve through their proxies. Its own instances (not the shared `e2e` one), removed with `down -v`.
"""

from __future__ import annotations

import subprocess

import pytest

from .conftest import CLI_TIMEOUT, COMPOSE_FILE, UP_TIMEOUT, Stack

pytestmark = pytest.mark.e2e

PROJECTS = ("e2e-side-a", "e2e-side-b")


class Side(Stack):
    """An instance of the local environment as a developer starts it: only what keeps it still while others edit
    the sources (no auto-reload, no debugger port) is set; HTTP_PORT is not."""

    def __init__(self, project: str) -> None:
        super().__init__(0, "process")
        self.project = project
        self.state_dir = COMPOSE_FILE.parent / ".unistack" / project
        for name in ("HTTP_PORT", "COMPOSE_PROFILES", "FRONTEND_MODE"):
            self.env.pop(name, None)  # environments/local.env's: the dev frontend on the preferred port

    def proxy_port(self) -> int:
        (port,) = self.ps()["proxy"]["ports"]
        number: int = port["host_port"]
        self.port, self.base_url = number, f"http://127.0.0.1:{number}"
        return number


def test_two_instances_of_the_local_environment_come_up_on_their_own_ports() -> None:
    sides = [Side(name) for name in PROJECTS]
    for side in sides:  # a run that was killed may have left one up
        side.cli("down", "-v", check=False)
    try:
        outputs = [
            side.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + CLI_TIMEOUT).stdout
            for side in sides
        ]
        first, second = (side.proxy_port() for side in sides)
        assert first != second
        assert f"proxy is reachable at http://127.0.0.1:{second} (" in outputs[1], outputs[1]
        if first == 8080:  # the preferred port was free: the second instance says who has it
            assert f"(8080 is used by instance `{PROJECTS[0]}`)" in outputs[1], outputs[1]
        for side in sides:
            side.assert_sole_listener()
            body = side.wait_ready(timeout=60)
            assert body["status"] == "ready" and body["checks"]["database"]["ok"], body
            with side.client() as client:
                page = client.get("/")
                assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        for side in sides:
            try:
                side.cli("down", "-v")
            except (AssertionError, subprocess.TimeoutExpired):
                side.force_cleanup()
                raise
