"""setup on Docker: the service's image is built (into the build log) or found; a new image recreates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker.errors
import pytest

from unistack.config.model import Project
from unistack.runtimes.docker.runtime import DockerRuntime

from .conftest import ProjectFactory
from .support import requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

BUILT = """
services:
  app:
    build: ./app
    command: ["sh", "-c", "cat /marker; sleep 600"]
"""


@pytest.fixture
def built_images(client: docker.DockerClient) -> Iterator[list[str]]:
    """Names (or ids) of images a test builds; removed afterwards with the containers that use them."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        with contextlib.suppress(docker.errors.ImageNotFound):
            image = client.images.get(ref)
            for container in client.containers.list(all=True, filters={"ancestor": image.id}):
                container.remove(force=True)
            client.images.remove(image.id, force=True)


def with_context(project: Project, marker: str, fail: bool = False) -> Project:
    context = project.working_dir / "app"
    context.mkdir(exist_ok=True)
    step = "RUN exit 3" if fail else f"RUN echo {marker} > /marker"
    (context / "Dockerfile").write_text(f"FROM unistack-test-python:1\n{step}\n")
    return project


async def test_setup_builds_the_image_once_and_logs_it(
    projects: ProjectFactory, runtime: DockerRuntime, built_images: list[str], client: docker.DockerClient
) -> None:
    project = with_context(projects(BUILT), "first")
    built_images.append(f"{project.name}-app")
    await runtime.prepare(project)
    result = await runtime.setup(project, project.services["app"])
    assert result.ok and result.exit_code == 0, result.output
    build_log = (project.logs_dir / "app.build.log").read_text()
    assert "RUN echo first > /marker" in build_log

    handle = await runtime.start(project, project.services["app"])
    await until(lambda: _tail_has(runtime, project, "first"), message="the built image to run")
    again = await runtime.setup(project, project.services["app"])
    assert again.ok
    assert (project.logs_dir / "app.build.log").read_text() == build_log  # nothing changed: no build

    await runtime.stop(handle, "SIGKILL", 0)
    built_images.append(client.images.get(f"{project.name}-app").id)  # untagged by the rebuild
    with_context(project, "second")
    assert (await runtime.setup(project, project.services["app"])).ok
    recreated = await runtime.start(project, project.services["app"])
    assert recreated.ident != handle.ident  # a new image is a new container
    await until(lambda: _tail_has(runtime, project, "second"), message="the rebuilt image to run")


async def test_start_builds_a_missing_image_itself(
    projects: ProjectFactory, runtime: DockerRuntime, built_images: list[str]
) -> None:
    project = with_context(projects(BUILT), "unprepared")
    built_images.append(f"{project.name}-app")
    await runtime.prepare(project)
    await runtime.start(project, project.services["app"])
    await until(lambda: _tail_has(runtime, project, "unprepared"), message="the image built by start")


async def test_setup_failures_say_why(
    projects: ProjectFactory, runtime: DockerRuntime, built_images: list[str]
) -> None:
    project = with_context(projects(BUILT), "", fail=True)
    built_images.append(f"{project.name}-app")
    await runtime.prepare(project)
    result = await runtime.setup(project, project.services["app"])
    assert not result.ok and result.exit_code == 1
    assert "exit 3" in result.output or "returned a non-zero code: 3" in result.output

    missing = projects("services:\n  app:\n    image: ut-no-such-image:1\n")
    await runtime.prepare(missing)
    result = await runtime.setup(missing, missing.services["app"])
    assert not result.ok and "ut-no-such-image:1" in result.output
    assert "ut-no-such-image:1" in (missing.logs_dir / "app.build.log").read_text()


async def _tail_has(runtime: DockerRuntime, project: Project, text: str) -> bool:
    return text in await runtime.tail(project, "app", 5)
