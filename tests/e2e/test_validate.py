"""`unistack validate` on the real stack, in each runtime: the healthy stack passes every check (exit 0, JSON and
JUnit parsed); then one component at a time is broken for real, validate must blame it and exit 1, and the stack
is restored before the next test (the database stopped, the backend frozen, the proxy routing to a frontend that
is not there, the files read for another environment than the one the instance runs).

Each break is short (a few seconds), well under the backend's healthcheck budget (3 failures 5 s apart), so the
supervisor does not restart anything on the way; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e

TIMEOUT = "3"  # seconds per check: a frozen service is judged within it


def validate(stack: Stack, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = stack.cli("validate", "--format", "json", "--timeout", TIMEOUT, *args, check=False, timeout=120)
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    results: list[dict[str, Any]] = json.loads(result.stdout)
    return result.returncode, results


def failures(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["verdict"] == "fail"]


def blamed(results: list[dict[str, Any]]) -> set[str]:
    return {r["component"] for r in failures(results)}


def restored(stack: Stack) -> None:
    stack.wait_healthy()
    stack.wait_ready()


def test_the_healthy_stack_validates(stack: Stack) -> None:
    restored(stack)
    code, results = validate(stack, "--write")  # the docker instance is production: include the round trip
    assert code == 0, json.dumps(failures(results), indent=2)
    assert all(set(r) == {"name", "component", "verdict", "duration", "detail", "hint"} for r in results)
    verdicts = {r["name"]: r["verdict"] for r in results}
    for name in ("db ready", "db isolated", "backend reaches the database", "live updates", "note round trip"):
        assert verdicts[name] == "pass", name
    assert verdicts["hashed assets cached and compressed"] == "pass"  # the e2e stack serves the static build
    assert verdicts["page renders the notes"] == "skip"  # only with --browser
    with stack.client() as client:
        left = [note for note in client.get("/api/notes").json() if note["title"] == "unistack validate probe"]
    assert not left, f"the round trip left notes behind: {left}"


def test_the_page_renders_in_chromium(stack: Stack) -> None:
    """`--browser`: headless Chromium loads the page through the proxy and sees the notes it fetched."""
    from unistack.ops.browser import find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium on this machine (Debian's chromium package)")
    restored(stack)
    _, results = validate(stack, "--browser")
    rendered = next(r for r in results if r["name"] == "page renders the notes")
    assert rendered["verdict"] == "pass", rendered
    assert "no console errors" in rendered["detail"]


def test_junit_and_text_output(stack: Stack) -> None:
    junit = stack.cli("validate", "--format", "junit", "--timeout", TIMEOUT)
    root = ET.fromstring(junit.stdout.encode())
    assert root.get("failures") == "0"
    assert {"db", "backend", "proxy", "configuration"} <= {s.get("name") for s in root.iter("testsuite")}
    text = stack.cli("validate", "--timeout", TIMEOUT).stdout
    assert "passed, 0 failed" in text


def test_up_wait_validate_validates_after_up(stack: Stack) -> None:
    result = stack.cli("up", "--wait", "--wait-timeout", "120", "--validate", timeout=240)
    assert "passed, 0 failed" in result.stdout, result.stdout
    restored(stack)


def test_an_instance_that_is_not_up_is_bad_usage(stack: Stack) -> None:
    absent = copy.copy(stack)
    absent.project = "e2e-validate-absent"
    result = absent.cli("validate", check=False)
    assert result.returncode == 2, result.stderr
    assert "unistack up --wait" in result.stderr


def test_a_stopped_database_is_blamed(stack: Stack) -> None:
    restored(stack)
    try:
        stack.cli("stop", "db")
        code, results = validate(stack)
    finally:
        stack.cli("start", "db")
        restored(stack)
    assert code == 1
    assert "db" in blamed(results), json.dumps(failures(results), indent=2)
    assert {r["name"] for r in failures(results)} >= {"db ready", "backend reaches the database"}


@contextlib.contextmanager
def frozen(stack: Stack, service: str) -> Iterator[None]:
    """The service stopped in its tracks (SIGSTOP to its process group; `docker pause`), resumed on the way out."""
    if stack.runtime == "process":
        pgid = int(stack.state()["services"][service]["record"]["pgid"])
        os.killpg(pgid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pgid, signal.SIGCONT)
        return
    (container,) = [c for c in stack.containers() if c.labels.get("com.docker.compose.service") == service]
    container.pause()
    try:
        yield
    finally:
        container.unpause()


def test_a_frozen_backend_is_blamed(stack: Stack) -> None:
    restored(stack)
    try:
        with frozen(stack, "backend"):
            code, results = validate(stack)
    finally:
        restored(stack)
    assert code == 1
    assert "backend" in blamed(results), json.dumps(failures(results), indent=2)
    names = {r["name"] for r in failures(results)}
    assert {"api through the proxy", "live updates"} <= names
    assert "page" not in names  # the proxy itself still serves the built page


def test_a_proxy_routing_nowhere_is_blamed(stack: Stack) -> None:
    """FRONTEND_MODE=dev with the static profile: the proxy forwards pages to a dev server that does not run."""
    restored(stack)
    broken = copy.copy(stack)
    broken.env = {**stack.env, "FRONTEND_MODE": "dev"}
    try:
        broken.cli("up", "--wait", "--wait-timeout", "120", timeout=240)
        code, results = validate(broken)
    finally:
        stack.cli("up", "--wait", "--wait-timeout", "120", timeout=240)
        restored(stack)
    assert code == 1
    assert "proxy" in blamed(results), json.dumps(failures(results), indent=2)
    assert {"page", "static file headers"} <= {r["name"] for r in failures(results)}
    assert not {"db", "configuration"} & blamed(results)


def test_files_of_another_environment_are_drift(stack: Stack) -> None:
    restored(stack)
    other = copy.copy(stack)
    other.env = {**stack.env, "POSTGRES_PASSWORD": stack.env.get("POSTGRES_PASSWORD", "local-dev-only-password")}
    result = other.cli("--env", "staging", "validate", "--format", "json", "--timeout", TIMEOUT, check=False)
    assert result.returncode == 1, result.stderr
    results = json.loads(result.stdout)
    assert {"configuration", "backend"} <= blamed(results), json.dumps(failures(results), indent=2)
    by_name = {r["name"]: r for r in results}
    assert "started from an older configuration" in by_name["configuration unchanged"]["detail"]
    assert "the configuration gives 'staging'" in by_name["environment is the one configured"]["detail"]
