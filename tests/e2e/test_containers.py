"""The stack as containers (production overlay): private networks, named volumes, hardening, Compose's names.

- Only the proxy publishes a port, on 127.0.0.1. The database sits on the internal `data` network alone: the host
  cannot reach it (the host has no address on that bridge), nor can a container on the proxy's `edge` network;
  the backend can.
- Every container runs as a non-root user, with no capabilities, no-new-privileges, a read-only root file
  system, and the memory / CPU / pids limits of deploy.resources, as `docker inspect` shows.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from .conftest import LONG_RUNNING, ONE_SHOT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

PROBE = (
    "import socket,sys\n"
    "try:\n"
    "    s = socket.create_connection(('db', 5432), timeout=3)\n"
    "    s.sendall(bytes([0, 0, 0, 8, 4, 210, 22, 47]))  # SSLRequest: PostgreSQL answers one byte, S or N\n"
    "    print('answer', s.recv(1))\n"
    "except OSError as exc:\n"
    "    print('unreachable', exc)\n"
)


@pytest.fixture
def containers(stack: Stack) -> Iterator[dict[str, Any]]:
    if stack.runtime != "docker":
        pytest.skip("containers only")
    stack.wait_healthy()
    yield {c.labels["com.docker.compose.service"]: c for c in stack.containers()}


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def test_compose_names_and_labels(stack: Stack, containers: dict[str, Any], engine: docker.DockerClient) -> None:
    assert set(containers) == {*LONG_RUNNING, *ONE_SHOT}
    for service, container in containers.items():
        assert container.name == f"{stack.project}-{service}-1"
        assert container.labels["com.docker.compose.project"] == stack.project
    networks = {n.name for n in engine.networks.list(filters={"label": f"com.docker.compose.project={stack.project}"})}
    assert {f"{stack.project}_edge", f"{stack.project}_data"} <= networks
    volumes = {v.name for v in engine.volumes.list(filters={"label": f"com.docker.compose.project={stack.project}"})}
    assert {f"{stack.project}_db", f"{stack.project}_uploads", f"{stack.project}_frontend-dist"} <= volumes


def test_networks_keep_the_database_private(
    stack: Stack, containers: dict[str, Any], engine: docker.DockerClient
) -> None:
    db = containers["db"]
    assert set(db.attrs["NetworkSettings"]["Networks"]) == {f"{stack.project}_data"}
    assert set(containers["proxy"].attrs["NetworkSettings"]["Networks"]) == {f"{stack.project}_edge"}
    data = engine.networks.get(f"{stack.project}_data")
    assert data.attrs["Internal"] is True

    # from the host, to the database's own address: no PostgreSQL answers
    address = db.attrs["NetworkSettings"]["Networks"][f"{stack.project}_data"]["IPAddress"]
    try:
        with socket.create_connection((address, 5432), timeout=3) as sock:
            sock.sendall(bytes([0, 0, 0, 8, 4, 210, 22, 47]))
            sock.settimeout(3)
            answer = sock.recv(1)
    except OSError:
        answer = b""
    assert answer not in (b"S", b"N"), f"PostgreSQL answered the host at {address}:5432"

    # from the backend (on data): PostgreSQL answers the SSLRequest
    _, output = containers["backend"].exec_run(["python3", "-c", PROBE])
    assert b"answer b'" in output, output.decode(errors="replace")

    # from a container on the proxy's network (edge): the name does not resolve, the address is not routed
    image = containers["backend"].image.id
    output = engine.containers.run(
        image, ["python3", "-c", PROBE], network=f"{stack.project}_edge", remove=True, user="10001"
    )
    assert b"unreachable" in output, output.decode(errors="replace")


def test_hardening_is_applied(containers: dict[str, Any]) -> None:
    for service in LONG_RUNNING:
        attrs = containers[service].attrs
        host, config = attrs["HostConfig"], attrs["Config"]
        assert config["User"] not in ("", "0", "root") and not config["User"].startswith("0:"), (service, config)
        assert host["CapDrop"] == ["ALL"] or "ALL" in host["CapDrop"], (service, host["CapDrop"])
        assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"] or []), service
        assert host["ReadonlyRootfs"] is True, service
        assert host["Memory"] > 0 and host["NanoCpus"] > 0 and (host["PidsLimit"] or 0) > 0, (service, host)
        assert host["RestartPolicy"]["Name"] in ("", "no"), "unistack restarts; Docker must not as well"
        code, output = containers[service].exec_run(["id", "-u"])
        assert code == 0 and output.strip() != b"0", (service, output)


def test_data_lives_in_named_volumes_owned_by_the_services(containers: dict[str, Any]) -> None:
    mounts = {m["Destination"]: m for m in containers["db"].attrs["Mounts"]}
    db_mount = [m for m in mounts.values() if m["Type"] == "volume"]
    assert db_mount and db_mount[0]["Name"].endswith("_db"), mounts
    uploads = [m for m in containers["backend"].attrs["Mounts"] if m["Type"] == "volume"]
    assert uploads and uploads[0]["Name"].endswith("_uploads")
    code, output = containers["backend"].exec_run(["sh", "-c", f"touch {uploads[0]['Destination']}/.probe && echo ok"])
    assert (code, output.strip()) == (0, b"ok"), output
