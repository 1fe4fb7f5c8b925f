"""The swarm fixtures: one 3-node swarm for the whole session (tests/swarm/harness.py), its manager's engine
holding the images the test files run (loaded from this machine's engine, as a build there would leave them),
and ``unistack`` run against it. Skipped without root, dockerd, docker-registry or an engine here; with
UNISTACK_REQUIRE_DOCKER=1 (CI) a missing piece fails instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.swarm import harness

ROOT = Path(__file__).resolve().parents[2]
UNISTACK = ROOT / ".venv" / "bin" / "unistack"
IMAGES = ("debian:bookworm-slim", "stack-proxy")  # what small/ and broken/ run


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, dockerd)"
    for tool in ("dockerd", "docker-registry", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        with contextlib.closing(docker.from_env(timeout=10)) as probe:
            probe.ping()
    except Exception as exc:
        return f"no Docker engine answers here: {exc}"
    return None


@pytest.fixture(scope="session")
def swarm() -> Iterator[harness.Swarm]:
    if (problem := _missing()) is not None:
        if os.environ.get("UNISTACK_REQUIRE_DOCKER") == "1":
            pytest.fail(f"UNISTACK_REQUIRE_DOCKER=1 but the swarm tests cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    host = docker.from_env(timeout=600)
    try:
        host.images.get("stack-proxy")
    except docker.errors.ImageNotFound:
        subprocess.run(
            [str(UNISTACK), "-f", str(ROOT / "stack" / "compose.yaml"), "build", "--bootstrap", "proxy"],
            check=True,
            timeout=900,
        )
    formed = harness.start(3)
    try:
        for image in IMAGES:
            harness.push_image(formed, image)
        yield formed
    finally:
        harness.stop(formed)
        host.close()


def unistack(
    swarm: harness.Swarm, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``unistack ARGS`` with DOCKER_HOST at the swarm's manager."""
    environ = {**os.environ, "DOCKER_HOST": swarm.manager.url, "GREETING": "hello", **(env or {})}
    environ.pop("UNISTACK_ENV", None)
    done = subprocess.run(
        [str(UNISTACK), *args], env=environ, capture_output=True, text=True, timeout=timeout, check=False
    )
    sys.stderr.write(done.stdout + done.stderr)  # shown by pytest when the test fails
    return done
