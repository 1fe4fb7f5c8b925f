"""Backup, restore and reset on the docker runtime through the real CLI: a named volume read by a helper container
that mounts it read-only and written through one that switches the files in, and a custom dump/restore pair run
with `docker exec` in the service's container. (PostgreSQL in a container: tests/e2e/test_backup.py on the real
stack.) A restore whose archive has a flipped byte changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from .support import remove_project_resources, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

COMPOSE = """
services:
  files:
    image: ${TEST_IMAGE}
    command: ["sleep", "600"]
    init: true
    volumes: [data:/data]
    x-unistack:
      backup:
        - volume: data
  notes:
    image: ${TEST_IMAGE}
    command: ["sleep", "600"]
    init: true
    depends_on: [files]
    x-unistack:
      backup:
        - dump: ["cat", "/tmp/notes.txt"]
          restore: ["sh", "-c", "cat > /tmp/notes.txt.new && mv /tmp/notes.txt.new /tmp/notes.txt"]
volumes:
  data: {}
"""

SCRIPT = (
    "mkdir -p /data/a && head -c 200000 /dev/urandom > /data/a/blob && echo hi > /data/top && chown 4321:4321 /data/top"
)
SNAPSHOT = (
    "cd /data && find . -mindepth 1 | sort | while read f; do stat -c '%n %u %a %s' \"$f\"; done; md5sum a/blob top"
)


class Cli:
    def __init__(self, folder: Path, name: str, image: str) -> None:
        self.folder, self.name = folder, name
        self.env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image}
        for key in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "UNISTACK_RUNTIME", "COMPOSE_PROJECT_NAME"):
            self.env.pop(key, None)

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-p", self.name, "--runtime", "docker", *args]
        return subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def exec(self, service: str, script: str) -> str:
        out = subprocess.run(
            ["docker", "exec", f"{self.name}-{service}-1", "sh", "-c", script], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


@pytest.fixture
def cli(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Cli]:
    name = unique_name()
    folder = tmp_path / name
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    cli = Cli(folder, name, image)
    try:
        cli.ok("up", "--wait", "--wait-timeout", "120")
        yield cli
    finally:
        cli.run("down", "-v", "-t", "1")
        remove_project_resources(client, name)


def test_round_trip_damaged_archive_and_reset(cli: Cli, client: docker.DockerClient) -> None:
    cli.exec("files", SCRIPT)
    cli.exec("notes", "echo 'first note' > /tmp/notes.txt")
    before = (cli.exec("files", SNAPSHOT), cli.exec("notes", "cat /tmp/notes.txt"))
    cli.ok("backup")
    archive = next((cli.folder / ".unistack" / cli.name / "backups").glob("*.tar"))
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert [(p["service"], p["kind"]) for p in manifest["parts"]] == [("files", "volume"), ("notes", "command")]
    assert manifest["runtime"] == "docker"
    assert not [c for c in client.containers.list(all=True) if "unistack-backup" in c.name]  # helpers removed

    cli.exec("files", "rm -rf /data/a && echo changed > /data/top && echo new > /data/new")
    cli.exec("notes", "echo 'second note' > /tmp/notes.txt")
    changed = (
        cli.exec("files", SNAPSHOT.replace("md5sum a/blob top", "md5sum top")),
        cli.exec("notes", "cat /tmp/notes.txt"),
    )

    flipped = bytearray(archive.read_bytes())
    flipped[1024] ^= 0x10
    bad = cli.folder / "flipped.tar"
    bad.write_bytes(bytes(flipped))
    refused = cli.run("restore", str(bad), "--yes")
    assert refused.returncode == 2 and "damaged" in refused.stderr, refused.stderr
    assert (
        cli.exec("files", SNAPSHOT.replace("md5sum a/blob top", "md5sum top")),
        cli.exec("notes", "cat /tmp/notes.txt"),
    ) == changed

    out = cli.ok("restore", str(archive), "--yes")
    assert "restored volume data of files" in out
    assert (cli.exec("files", SNAPSHOT), cli.exec("notes", "cat /tmp/notes.txt")) == before
    assert not [c for c in client.containers.list(all=True) if "unistack-restore" in c.name]

    cli.ok("reset", "--yes")
    assert not client.volumes.list(filters={"label": f"com.docker.compose.project={cli.name}"})
    assert archive.exists()
