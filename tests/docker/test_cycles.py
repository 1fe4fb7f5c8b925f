"""`up` / `down` cycles on the docker runtime leak nothing: no container, network, anonymous volume, port or process
of the instance is left after `down`, and the named volume stays (a few cycles; bench/cycles.py runs 50 with the
stack's PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import docker.errors
import psutil
import pytest

from tests.loopback import free_port, port_free

from .support import remove_project_resources, requires_engine, unique_name
from .test_cli import Cli

pytestmark = [pytest.mark.docker, requires_engine()]

CYCLES = 2


def compose(port: int) -> str:
    return f"""
services:
  db:
    image: ${{TEST_IMAGE}}
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 600"]
    init: true
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 30s
      start_interval: 200ms
    volumes: ["data:/data", "/scratch"]
    networks: [back]
  web:
    image: ${{TEST_IMAGE}}
    command: ["python3", "-c", "import socket, time; s = socket.create_server(('', 8000)); time.sleep(600)"]
    init: true
    ports: ["127.0.0.1:{port}:8000"]
    volumes: ["/cache"]
    networks: [back]
    depends_on:
      db: {{condition: service_healthy}}
networks:
  back: {{}}
volumes:
  data: {{}}
"""


def ours(folder: Path) -> list[int]:
    """The instance's processes on the host (its daemon: the state folder is on its command line)."""
    return [p.pid for p in psutil.process_iter(["cmdline"]) if str(folder) in " ".join(p.info["cmdline"] or [])]


def test_up_down_cycles_leave_nothing_but_the_named_volume(
    tmp_path: Path, client: docker.DockerClient, image: str
) -> None:
    name = unique_name()
    folder = tmp_path / name
    folder.mkdir()
    port = free_port()
    (folder / "compose.yaml").write_text(compose(port))
    cli = Cli(folder, name, image)
    label: dict[str, str | list[str] | bool] = {"label": f"com.docker.compose.project={name}"}
    try:
        for _ in range(CYCLES):
            cli.run("up", "--wait", "--wait-timeout", "60")
            mounted = {
                m["Name"]
                for c in client.containers.list(filters=label)
                for m in c.attrs["Mounts"]
                if m["Type"] == "volume" and m["Name"] != f"{name}_data"
            }
            assert len(mounted) == 2  # /scratch and /cache: anonymous
            cli.run("down")
            assert not client.containers.list(all=True, filters=label)
            assert not client.networks.list(filters=label)
            assert [v.name for v in client.volumes.list(filters=label)] == [f"{name}_data"]
            for volume in mounted:  # gone with their containers (Compose leaves them dangling)
                with pytest.raises(docker.errors.NotFound):
                    client.volumes.get(volume)
            assert port_free(port)
            deadline = time.monotonic() + 5  # the daemon exits once it has answered `down`
            while ours(folder) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not ours(folder)
    finally:
        cli.run("down", "-v", check=False)
        remove_project_resources(client, name)
