"""A start that retrying cannot heal, on the docker runtime: a container of someone else holds the service's name,
so the service is fatal at once (no restarts, one line) and its dependent names it, one level deep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from .support import requires_engine, unique_name
from .test_cli import Cli

pytestmark = [pytest.mark.docker, requires_engine()]

COMPOSE = """
services:
  web:
    image: ${TEST_IMAGE}
    command: ["sleep", "600"]
    init: true
    restart: on-failure:5
  app:
    image: ${TEST_IMAGE}
    command: ["sleep", "600"]
    init: true
    depends_on: [web]
"""


@pytest.fixture
def cli(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Cli]:
    from .support import remove_project_resources

    name = unique_name()
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    instance = Cli(tmp_path, name, image)
    try:
        yield instance
    finally:
        instance.run("down", "-v", "-t", "1", check=False)
        remove_project_resources(client, name)


def test_a_container_name_owned_by_someone_else_is_fatal_at_once(
    cli: Cli, client: docker.DockerClient, image: str
) -> None:
    squatter = client.containers.create(image, ["sleep", "60"], name=f"{cli.name}-web-1")
    try:
        result = cli.run("up", "--wait", "--wait-timeout", "60", check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        web = next(line for line in lines if line.startswith("web failed: "))
        assert "web is fatal; could not start: a container named" in web and "belongs to" in web
        assert "app failed: app is blocked; dependency web is fatal (could not start: a container named" in lines[-1]
        rows = cli.ps()
        assert rows["web"]["state"] == "fatal" and rows["web"]["restarts"] == 0
        events = (cli.state_dir / "logs" / "events.jsonl").read_text()
        assert '"kind": "restarting"' not in events
        assert client.containers.get(squatter.id).status == "created"  # never taken over
    finally:
        squatter.remove(force=True)
