"""A named volume written by a restore both ways the docker runtime writes it: in its folder on this machine (GNU tar
and the host's shell running the switch: the engine local, root, the ``local`` driver's plain folder) and through
helper containers and the engine's archive (everywhere else). Both leave the same files, owners, modes and bytes,
and the old files gone; a restore that fails midway leaves the old files; what one route left after a kill, the
other finishes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from unistack.errors import RuntimeFailure
from unistack.runtimes.docker.data import DockerData
from unistack.runtimes.docker.volume_folder import DONE, LEFT_BY_RESTORE, STAGING

from .support import requires_engine, unique_name
from .test_backup_volume_read import FILL, EngineOnly, entries, project, read

pytestmark = [pytest.mark.docker, requires_engine()]

OLD = "mkdir -p /v/old && echo old > /v/old/file && echo old > /v/.old-hidden && echo old > /v/top"


@pytest.fixture
def volumes(client: docker.DockerClient, image: str) -> Iterator[Callable[[str], str]]:
    """Makes volumes ``<name>_data`` filled by a shell command; removes them after."""
    made: list[str] = []

    def make(fill: str) -> str:
        name = unique_name()
        client.volumes.create(f"{name}_data")
        made.append(name)
        client.containers.run(image, ["sh", "-c", fill], volumes={f"{name}_data": {"bind": "/v"}}, remove=True)
        return name

    try:
        yield make
    finally:
        for name in made:
            client.volumes.get(f"{name}_data").remove(force=True)


def source_of(data: bytes, fail_after: int | None = None) -> Callable[[], bytes]:
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    def source() -> bytes:
        if fail_after is not None and len(chunks) < fail_after:
            raise RuntimeFailure("the archive's checksum did not match")
        return chunks.pop(0) if chunks else b""

    return source


def test_both_routes_write_the_same_files(
    volumes: Callable[[str], str], image: str, tmp_path: Path, client: docker.DockerClient
) -> None:
    original = volumes(FILL)
    service = project(original, image, tmp_path).services["files"]
    data = read(EngineOnly(project(original, image, tmp_path), {}), service)
    written = {}
    for route, kind in (("host", DockerData), ("engine", EngineOnly)):
        target = volumes(OLD)
        stack = project(target, image, tmp_path)
        streams = kind(stack, {})
        if route == "host" and os.geteuid() == 0:  # CI runs as root beside its engine: the fast way is taken
            assert streams.host_folder("data") is not None
        streams.volume_in(stack.services["files"], "data", source_of(data))
        written[route] = entries(read(EngineOnly(stack, {}), stack.services["files"]))
        assert not [c for c in client.containers.list(all=True) if target in (c.name or "")]  # no helper left
    expected = entries(data)
    for found in written.values():
        assert {k: v for k, v in found.items() if k != "."} == {k: v for k, v in expected.items() if k != "."}
        assert not {"old", "old/file", ".old-hidden"} & set(found)  # the old files are gone
        assert not set(LEFT_BY_RESTORE) & set(found)
    assert written["host"] == written["engine"]


@pytest.mark.parametrize("kind", [DockerData, EngineOnly], ids=["host", "engine"])
def test_a_restore_failing_midway_leaves_the_old_files(
    volumes: Callable[[str], str], image: str, tmp_path: Path, kind: type[DockerData]
) -> None:
    original = project(volumes(FILL), image, tmp_path)
    data = read(EngineOnly(original, {}), original.services["files"])
    target = volumes(OLD)
    stack = project(target, image, tmp_path)
    before = entries(read(EngineOnly(stack, {}), stack.services["files"]))
    with pytest.raises(RuntimeFailure):
        kind(stack, {}).volume_in(stack.services["files"], "data", source_of(data, fail_after=3))
    after = entries(read(EngineOnly(stack, {}), stack.services["files"]))
    assert {k: v for k, v in after.items() if k != "."} == {k: v for k, v in before.items() if k != "."}


def test_what_a_killed_restore_left_is_finished_by_either_route(
    volumes: Callable[[str], str], image: str, tmp_path: Path
) -> None:
    # killed after the new files were complete and half the old ones were moved aside (no switching mark yet)
    left = (
        f"{OLD} && mkdir -p /v/{STAGING}/new && echo new > /v/{STAGING}/new/file && touch /v/{DONE} "
        "&& mkdir -p /v/.unistack-previous && mv /v/old /v/.unistack-previous/"
    )
    for kind in (DockerData, EngineOnly):
        name = volumes(left)
        stack = project(name, image, tmp_path)
        said = kind(stack, {}).volume_recover(stack.services["files"], "data")
        assert said is not None and "completed" in said
        found = entries(read(EngineOnly(stack, {}), stack.services["files"]))
        assert set(found) - {"."} == {"new", "new/file"}
