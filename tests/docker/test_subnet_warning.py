"""``up`` warns, once per network, where a start-first update would keep Docker's address choice: a network that
a start-first service joins whose subnet is not fixed (one an older unistack created, an external one), naming
the services and the fix; the fix followed (``down`` and ``up``, the external network created with a subnet and
the label) ends the warning. Through the real CLI on the docker runtime."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from unistack.runtimes.docker.resources import SUBNET_LABEL, instance_labels

from .support import Cli, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

SERVICE = """
  {name}:
    image: ${{TEST_IMAGE}}
    command: ["sleep", "600"]
    init: true
    stop_grace_period: 1s
    networks: [edge, shared]
    deploy: {{update_config: {{order: start-first}}}}
"""
COMPOSE = (
    "services:"
    + SERVICE.format(name="web")
    + SERVICE.format(name="api")
    + """
networks:
  edge: {}
  shared:
    external: true
    name: "${SHARED}"
"""
)


def _warnings(cli: Cli) -> list[str]:
    """``up -d``'s warnings about networks."""
    return [line for line in cli.run("up", "-d").stderr.splitlines() if line.startswith("warning: network")]


@pytest.fixture
def up(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Cli]:
    name = unique_name()
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    instance = Cli(tmp_path, name, image, SHARED=f"{name}-shared")
    try:
        yield instance
    finally:
        instance.finish(client)
        with contextlib.suppress(docker.errors.NotFound):
            client.networks.get(f"{name}-shared").remove()


def test_a_network_without_a_fixed_subnet_is_warned_once_per_up_with_the_fix(
    up: Cli, client: docker.DockerClient
) -> None:
    edge, shared = f"{up.name}_edge", f"{up.name}-shared"
    # as an older unistack left it: the instance's own, no subnet of its choosing
    labels = {**instance_labels(up.name, up.folder / ".unistack" / up.name), "com.docker.compose.network": "edge"}
    client.networks.create(edge, driver="bridge", labels=labels)
    client.networks.create(shared, driver="bridge")
    first = _warnings(up)
    assert len(first) == 2, first  # one per network, not per service or container
    (older,) = [w for w in first if f"network {edge} " in w]
    assert "created by an older unistack" in older and "web, api" in older
    assert "`unistack down` and then `up` once" in older
    (external,) = [w for w in first if f"network {shared} " in w]
    assert "(external)" in external and f"--label {SUBNET_LABEL}=fixed {shared}" in external

    up.run("down", "-t", "1")  # the fix for the project's own: created again with its subnet fixed
    client.networks.get(shared).remove()
    client.networks.create(shared, driver="bridge", ipam=_subnet(client), labels={SUBNET_LABEL: "fixed"})
    assert _warnings(up) == []
    assert client.networks.get(edge).attrs["Labels"][SUBNET_LABEL] == "fixed"


def _subnet(client: docker.DockerClient) -> docker.types.IPAMConfig:
    """A subnet Docker would pick now (from a throwaway network), given as the network's own."""
    probe = client.networks.create(f"{unique_name()}-probe", driver="bridge")
    try:
        subnet = probe.attrs["IPAM"]["Config"][0]["Subnet"]
    finally:
        probe.remove()
    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
