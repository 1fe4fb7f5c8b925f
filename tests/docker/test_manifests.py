"""Dependencies without rebuilds, in a container: a changed manifest is copied into the running container, its
install command runs there (as the container's user, with the host's CA bundle named for pip and npm), and the
same container is restarted from the same image, which now imports the new package; a broken manifest leaves
the container running as it was.

The test's installer (``install.py``, no network) does what pip does with wheels: it reads ``name==version`` lines
and unpacks the module of ``name-version-*.whl`` from /wheels (a bind mount of the host's folder, the test's
package index) or the image's /app/wheels into /app/site, which the service imports from."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.test_manifests import wheel
from unistack.control import client as daemon_client

from .support import remove_project_resources, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

COMPOSE = """
services:
  app:
    build:
      context: ./image
      args: {BASE: "${TEST_IMAGE}"}
    init: true
    stop_grace_period: 2s
    environment: {PYTHONPATH: /app/site}
    volumes: ["./wheels:/wheels:ro", "./out:/out"]
    x-unistack:
      dependencies:
        manifests: [{path: ./image/requirements.txt, target: /app/requirements.txt}]
        install: [python3, install.py]
"""
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
WORKDIR /app
COPY . /app
RUN python3 install.py /app/wheels && chown -R 1234:1234 /app
USER 1234:1234
CMD ["python3", "-u", "app.py"]
"""
INSTALLER = """\
import glob, os, sys, zipimport
folders = sys.argv[1:] or ["/wheels", "/app/wheels"]
print(f"installer runs as uid {os.getuid()}; PIP_CERT={os.environ.get('PIP_CERT', '')}", flush=True)
installed = []
for line in open("requirements.txt").read().split():
    name, _, version = line.partition("==")
    found = [w for folder in folders for w in glob.glob(f"{folder}/{name}-{version}-*.whl")]
    if not found:
        print(f"ERROR: No matching distribution found for {line}", flush=True)
        sys.exit(1)
    os.makedirs("site", exist_ok=True)
    with open(f"site/{name}.py", "wb") as out:  # zipimport: python3-minimal has no zipfile (no shutil)
        out.write(zipimport.zipimporter(found[0]).get_data(f"{name}.py"))
    installed.append(f"{name}-{version}")
print("Successfully installed " + " ".join(installed), flush=True)
"""
SERVICE = """\
import importlib, os, time  # python3-minimal: no json, no uuid
found = {}
for name in ("foo", "bar"):
    try:
        found[name] = importlib.import_module(name).VERSION
    except ImportError:
        pass
print("app imports", found, flush=True)
with open("/out/report.tmp", "w") as out:
    out.write(repr({"boot": os.urandom(8).hex(), "modules": found}))
os.replace("/out/report.tmp", "/out/report.json")
while True:
    time.sleep(3600)
"""


class Instance:
    def __init__(self, folder: Path, name: str, image: str) -> None:
        self.folder, self.name = folder, name
        self.env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image}
        for key in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "UNISTACK_RUNTIME", "COMPOSE_PROJECT_NAME"):
            self.env.pop(key, None)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-p", self.name, "--runtime", "docker", *args]
        result = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    @property
    def state_dir(self) -> Path:
        return self.folder / ".unistack" / self.name

    def events(self) -> list[dict[str, Any]]:
        path = self.state_dir / "logs" / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def report(self) -> dict[str, Any] | None:
        try:
            return dict(ast.literal_eval((self.folder / "out" / "report.json").read_text()))
        except (OSError, ValueError, SyntaxError):
            return None


def wait_for(what: Callable[[], Any], timeout: float = 120, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")


@pytest.fixture
def instance(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Instance]:
    name = unique_name()
    context = tmp_path / "image"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "install.py").write_text(INSTALLER)
    (context / "app.py").write_text(SERVICE)
    (context / "requirements.txt").write_text("foo==1.0\n")
    wheel(context / "wheels", "foo", "1.0")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o777)  # the container's user (1234) writes its report there
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    made = Instance(tmp_path, name, image)
    try:
        made.run("up", "-d", "--wait", "--wait-timeout", "180")
        yield made
    finally:
        made.run("down", "-v", "-t", "1", check=False)
        pid = daemon_client.pid_of(made.state_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_project_resources(client, name)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{name}-app", force=True)


def test_a_changed_manifest_is_installed_in_the_running_container_without_a_rebuild(
    instance: Instance, client: docker.DockerClient
) -> None:
    container = f"{instance.name}-app-1"
    first = wait_for(instance.report, message="the first report")
    assert first["modules"] == {"foo": "1.0"}
    before = client.api.inspect_container(container)
    images_before = {image.id for image in client.images.list()}

    wheel(instance.folder / "wheels", "bar", "2.0")
    (instance.folder / "image" / "requirements.txt").write_text("foo==1.0\nbar==2.0\n")
    second = wait_for(lambda: (r := instance.report()) and "bar" in r["modules"] and r, message="bar importable")
    assert second["modules"] == {"foo": "1.0", "bar": "2.0"} and second["boot"] != first["boot"]

    after = client.api.inspect_container(container)
    assert after["Id"] == before["Id"]  # the same container, restarted
    assert after["Image"] == before["Image"]  # from the same image: nothing was rebuilt
    assert after["State"]["StartedAt"] != before["State"]["StartedAt"]
    assert {image.id for image in client.images.list()} == images_before
    messages = [e["message"] for e in instance.events() if e["kind"] == "install"]
    assert messages[0] == "app: requirements.txt changed; installing (python3 install.py in its container)"
    assert "installed foo 1.0, bar 2.0" in messages[-1] and messages[-1].endswith("restarting")
    build_log = (instance.state_dir / "logs" / "app.build.log").read_text()
    assert "installer runs as uid 1234" in build_log  # the container's user, not root
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file() or os.environ.get("SSL_CERT_FILE"):
        assert "PIP_CERT=/tmp/unistack-ca.crt" in build_log

    # a broken manifest: the install fails inside, and the container keeps running as it was
    (instance.folder / "image" / "requirements.txt").write_text("foo==1.0\nbar==2.0\nnope==1.0\n")
    failure = wait_for(
        lambda: [e for e in instance.events() if e["kind"] == "error" and e["service"] == "app"],
        message="the failed install's event",
    )[0]
    assert "the install failed (exit code 1): ERROR: No matching distribution found for nope==1.0" in failure["message"]
    still = client.api.inspect_container(container)
    assert still["State"]["Running"] and still["State"]["StartedAt"] == after["State"]["StartedAt"]
    assert instance.report() == second
