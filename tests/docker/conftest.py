"""Docker fixtures: an SDK client, the test image, projects with unique names cleaned up even on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors
import pytest

from unistack.config.model import Project
from unistack.runtimes.docker.runtime import DockerRuntime

from .support import ensure_test_image, make_project, remove_project_resources, unique_name


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def image(client: docker.DockerClient) -> str:
    return ensure_test_image(client)


@pytest.fixture
def runtime() -> Iterator[DockerRuntime]:
    runtime = DockerRuntime()
    try:
        yield runtime
    finally:
        runtime.close()


ProjectFactory = Callable[..., Project]


@pytest.fixture
def projects(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[ProjectFactory]:
    """``projects(compose_text, name=None)``: a loaded project in its own folder (``${TEST_IMAGE}``: the image)."""
    made: set[str] = set()

    def factory(compose: str, name: str | None = None) -> Project:
        name = name or unique_name()
        made.add(name)
        return make_project(tmp_path / name, compose, name, image)

    try:
        yield factory
    finally:
        for name in made:
            remove_project_resources(client, name)
