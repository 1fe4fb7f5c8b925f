"""Helpers for the Docker tests: the engine check, the test image, projects in a temp folder, the real CLI on
one instance, polling."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import docker.errors
import pytest

from unistack.config import load
from unistack.config.model import Project
from unistack.control import client as daemon_client
from unistack.runtimes.docker import base_image, images
from unistack.runtimes.docker.engine import DEFAULT_SOCKET, socket_problem

T = TypeVar("T")

IMAGE = "unistack-test-python:1"
DOCKERFILE = b"""\
FROM debian:bookworm-slim
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3-minimal \\
 && rm -rf /var/lib/apt/lists/*
"""


def engine_problem() -> str | None:
    """Why no Docker engine answers here (None when one does)."""
    try:
        problem = socket_problem(os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET)
        if problem is not None:  # checked first: the SDK leaks the socket of a failed connection
            raise problem
        client = docker.from_env()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return str(exc)
    return None


def requires_engine() -> pytest.MarkDecorator:
    """The calling module's tests are skipped when no engine answers; with UNISTACK_REQUIRE_DOCKER=1 (CI) the
    module fails to load instead."""
    problem = engine_problem()
    if problem is not None and os.environ.get("UNISTACK_REQUIRE_DOCKER") == "1":
        pytest.fail(f"UNISTACK_REQUIRE_DOCKER=1 but no Docker engine answers: {problem}", pytrace=False)
    return pytest.mark.skipif(problem is not None, reason=f"no Docker engine answers: {problem}")


def ensure_test_image(client: docker.DockerClient) -> str:
    """The small Python image every test runs, built once FROM debian:bookworm-slim and reused after. The base
    is made as `up` would make it: pulled, else bootstrapped offline (a fresh CI machine has no registry)."""
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        images.ensure_base(client, base_image.DEFAULT_BASE, emit=lambda line: None, bootstrap=True)
        client.images.build(fileobj=io.BytesIO(DOCKERFILE), tag=IMAGE, rm=True, forcerm=True)
    return IMAGE


def python_service(name: str, program: str, extra: str = "") -> str:
    """A Compose service entry running ``program`` with the test image's python3 (``extra``: more keys)."""
    body = textwrap.indent(textwrap.dedent(program).strip("\n"), " " * 8)
    return f"""
  {name}:
    image: ${{TEST_IMAGE}}
    command: ["sh", "-c", 'exec python3 -u -c "$$PROGRAM"']
{extra}    environment:
      PROGRAM: |
{body}
"""


def unique_name() -> str:
    return f"ut-{uuid.uuid4().hex[:8]}"


def make_project(folder: Path, compose: str, name: str, image: str = IMAGE) -> Project:
    """A project loaded from ``compose`` in ``folder``; ``${TEST_IMAGE}`` in it is the test image."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "compose.yaml"
    path.write_text(compose)
    env = {"PATH": os.environ.get("PATH", ""), "TEST_IMAGE": image}
    return load([path], env=env, project_name=name, cwd=folder)


class Cli:
    """``python -m unistack -p NAME --runtime docker`` in ``folder`` (``${TEST_IMAGE}``: the image; ``env``: more
    variables), with none of the shell's unistack settings."""

    def __init__(self, folder: Path, name: str, image: str, **env: str) -> None:
        self.folder, self.name = folder, name
        self.env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image, **env}
        for key in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "UNISTACK_RUNTIME", "COMPOSE_PROJECT_NAME"):
            self.env.pop(key, None)

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-p", self.name, "--runtime", "docker", *args]
        result = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def ps(self) -> dict[str, dict[str, Any]]:
        return {row["service"]: row for row in json.loads(self.run("ps", "--format", "json").stdout)}

    @property
    def state_dir(self) -> Path:
        return self.folder / ".unistack" / self.name

    def finish(self, client: docker.DockerClient) -> None:
        """After a test: ``down -v``, its daemon killed if it is still there, whatever the project left removed."""
        self.run("down", "-v", "-t", "1", check=False)
        pid = daemon_client.pid_of(self.state_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_project_resources(client, self.name)


def remove_project_resources(client: docker.DockerClient, name: str) -> None:
    """Everything labelled with this Compose project: containers, networks, volumes (even after a failure)."""
    label = {"label": f"com.docker.compose.project={name}"}
    for container in client.containers.list(all=True, filters=label):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True, v=True)
    for network in client.networks.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
    for volume in client.volumes.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            volume.remove(force=True)


async def until(what: Callable[[], Awaitable[T]], timeout: float = 20, message: str = "") -> T:
    """Poll ``what`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")
        await asyncio.sleep(0.1)


def inspect(client: docker.DockerClient, ref: str) -> dict[str, Any]:
    return dict(client.api.inspect_container(ref))
