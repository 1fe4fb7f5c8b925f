"""A named volume read for a backup both ways the docker runtime reads it: from its folder on this machine with GNU
tar (the engine local, root, the ``local`` driver's plain folder: ``DockerData.host_folder``) and through the
engine's archive of a helper container (everywhere else). Both give the same files, owners, modes and bytes; a
volume with mount options (tmpfs) is never read from the host."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from unistack.config.model import BackupPart, Project, Service
from unistack.runtimes.docker.data import DockerData

from .support import requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

FILL = (
    "mkdir -p /v/a/b && head -c 300000 /dev/urandom > /v/a/b/blob && echo hi > /v/top && chown 4321:4322 /v/top "
    "&& chmod 0640 /v/top && ln -s a/b/blob /v/link && touch /v/.hidden"
)


class EngineOnly(DockerData):
    """Never the host folder: the engine's archive, as on a remote engine."""

    def host_folder(self, volume: str) -> Path | None:
        return None


def project(name: str, image: str, tmp_path: Path) -> Project:
    files = Service(
        name="files",
        backup=(BackupPart(kind="volume", volume="data"),),
        spec={"image": image, "volumes": [{"type": "volume", "source": "data", "target": "/data"}]},
    )
    return Project(
        name=name,
        environment="local",
        working_dir=tmp_path,
        files=(),
        state_dir=tmp_path / ".unistack" / name,
        services={"files": files},
        volumes={"data": {}},
    )


@pytest.fixture
def volume(client: docker.DockerClient, image: str) -> Iterator[str]:
    name = unique_name()
    client.volumes.create(f"{name}_data")
    try:
        client.containers.run(image, ["sh", "-c", FILL], volumes={f"{name}_data": {"bind": "/v"}}, remove=True)
        yield name
    finally:
        client.volumes.get(f"{name}_data").remove(force=True)


def entries(data: bytes) -> dict[str, tuple[str, int, int, int, str, str]]:
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            body = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            name = member.name.removeprefix("./").rstrip("/") or "."
            digest = hashlib.sha256(body).hexdigest()
            mode = member.mode & 0o7777  # the engine writes the type bits too (0o40755), GNU tar the permissions
            found[name] = (member.type.decode(), member.uid, member.gid, mode, member.linkname, digest)
    return found


def read(streams: DockerData, service: Service) -> bytes:
    out = bytearray()
    streams.volume_out(service, "data", out.extend)
    return bytes(out)


def test_the_host_folder_and_the_engines_archive_give_the_same_files(
    volume: str, image: str, tmp_path: Path, client: docker.DockerClient
) -> None:
    stack = project(volume, image, tmp_path)
    service = stack.services["files"]
    direct = DockerData(stack, {})
    if os.geteuid() == 0:  # CI runs as root beside its engine: the fast way is taken
        folder = direct.host_folder("data")
        assert folder is not None and (folder / "a" / "b" / "blob").stat().st_size == 300000
    from_host, from_engine = entries(read(direct, service)), entries(read(EngineOnly(stack, {}), service))
    assert from_host == from_engine
    assert from_host["top"][1:4] == (4321, 4322, 0o640) and from_host["link"][4] == "a/b/blob"
    assert {".hidden", "a", "a/b", "a/b/blob", "."} <= set(from_host)
    assert not [c for c in client.containers.list(all=True) if volume in (c.name or "")]  # no helper left


def test_a_volume_with_mount_options_is_read_through_the_engine(image: str, tmp_path: Path) -> None:
    client = docker.from_env()
    name = unique_name()
    client.volumes.create(f"{name}_data", driver_opts={"type": "tmpfs", "device": "tmpfs"})
    try:
        stack = project(name, image, tmp_path)
        assert DockerData(stack, {}).host_folder("data") is None
        assert set(entries(read(DockerData(stack, {}), stack.services["files"]))) == {"."}
    finally:
        client.volumes.get(f"{name}_data").remove(force=True)
        client.close()
