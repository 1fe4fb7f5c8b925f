"""docs/troubleshooting.md quotes what unistack prints for each problem: each quoted message is produced here by
making that problem happen for real (a small project in a temp folder, or the stack's own scripts), so a change
of wording that leaves the page behind fails this test.

A quote is a ```text block right after a `<!-- message: NAME -->` marker; `<...>` in it stands for a part that
differs from run to run (a path, a pid, a port). Every marker needs a scenario below, and every scenario a marker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Instance
from tests.loopback import free_port
from unistack.control.state import instance_lock

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "troubleshooting.md"
QUOTE = re.compile(r"<!-- message: ([a-z0-9-]+) -->\s*\n```text\n(.*?)```", re.S)

SLEEPER = """
services:
  web:
    x-unistack:
      process:
        command: ["sleep", "300"]
"""


def quotes() -> dict[str, str]:
    return {name: text for name, text in QUOTE.findall(DOC.read_text())}


def pattern(line: str) -> re.Pattern[str]:
    parts = re.split(r"<[^<>]*>", line)
    return re.compile(".+?".join(re.escape(p) for p in parts))


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------- the problems


def port_in_use(instance: Instance) -> str:
    port = free_port()
    instance.write(
        f"""
services:
  web:
    ports: ["127.0.0.1:${{WEB_PORT:-{port}}}:8000"]
    x-unistack: {{process: {{command: ["sleep", "300"]}}}}
"""
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        instance.env["WEB_PORT"] = str(port)  # pinned: set in the shell
        result = instance.run("up", "-d")
    assert result.returncode == 2
    return output(result)


def port_moved(instance: Instance) -> str:
    port = free_port()
    instance.write(
        f"""
services:
  web:
    ports: ["127.0.0.1:${{WEB_PORT:-{port}}}:${{WEB_PORT:-{port}}}"]
    x-unistack:
      process:
        command: ["{sys.executable}", "-m", "http.server", "${{WEB_PORT:-{port}}}", "--bind", "127.0.0.1"]
"""
    )
    instance.run("up", "-d", check=True, project="a")
    result = instance.run("up", "-d", check=True, project="b")
    return output(result)


def missing_variable(instance: Instance) -> str:
    instance.write(
        """
services:
  web:
    environment:
      API_TOKEN: ${API_TOKEN:?set API_TOKEN}
      API_URL: https://api.example.com/?token=${API_TOKEN}
    x-unistack: {process: {command: ["sleep", "300"]}}
"""
    )
    result = instance.run("up", "-d")
    assert result.returncode == 2
    return output(result)


def no_docker_engine(instance: Instance) -> str:
    instance.write(SLEEPER.replace("services:\n  web:\n", "services:\n  web:\n    image: debian:bookworm-slim\n"))
    instance.env["DOCKER_HOST"] = f"unix://{instance.folder}/docker.sock"
    result = instance.run("--runtime", "docker", "up", "-d")
    assert result.returncode == 1
    return output(result)


def unknown_environment(instance: Instance) -> str:
    instance.write(SLEEPER)
    result = instance.run("--env", "stagin", "up", "-d")
    assert result.returncode == 2
    return output(result)


def not_up(instance: Instance) -> str:
    instance.write(SLEEPER)
    result = instance.run("restart")
    assert result.returncode == 2
    return output(result)


def unknown_service(instance: Instance) -> str:
    instance.write(SLEEPER)
    result = instance.run("up", "-d", "wbe")
    assert result.returncode == 2
    return output(result)


def runtime_switch(instance: Instance) -> str:
    instance.write(SLEEPER.replace("services:\n  web:\n", "services:\n  web:\n    image: debian:bookworm-slim\n"))
    instance.run("--runtime", "process", "up", "-d", check=True)
    result = instance.run("--runtime", "docker", "up", "-d")
    assert result.returncode == 1
    return output(result)


def command_not_found(instance: Instance) -> str:
    instance.write(
        """
services:
  db:
    x-unistack: {process: {command: ["postgress", "-D", "data"]}}
  api:
    depends_on: [db]
    x-unistack: {process: {command: ["sleep", "300"]}}
"""
    )
    result = instance.run("up", "--wait", "--wait-timeout", "30", timeout=60)
    assert result.returncode == 1
    rows = instance.ps()
    assert rows["db"]["state"] == "fatal" and rows["db"]["restarts"] == 0
    return output(result)


def restarts_spent(instance: Instance) -> str:
    instance.write(
        """
services:
  db:
    healthcheck: {test: ["CMD", "false"], interval: 200ms, retries: 1}
    restart: on-failure:1
    x-unistack: {process: {command: ["sleep", "300"]}}
  api:
    depends_on: {db: {condition: service_healthy}}
    x-unistack: {process: {command: ["sleep", "300"]}}
"""
    )
    result = instance.run("up", "--wait", "--wait-timeout", "30", timeout=60)
    assert result.returncode == 1
    return output(result)


def isolation_in_process_mode(instance: Instance) -> str:
    instance.write(
        """
services:
  web:
    image: debian:bookworm-slim
    user: "10001"
    read_only: true
    x-unistack: {process: {command: ["sleep", "300"]}}
"""
    )
    result = instance.run("--runtime", "process", "up", "-d")
    assert result.returncode == 2
    return output(result)


def dependency_cycle(instance: Instance) -> str:
    instance.write(
        """
services:
  api:
    depends_on: [worker]
    x-unistack: {process: {command: ["sleep", "300"]}}
  worker:
    depends_on: [api]
    x-unistack: {process: {command: ["sleep", "300"]}}
"""
    )
    result = instance.run("up", "-d")
    assert result.returncode == 2
    return output(result)


def another_command(instance: Instance) -> str:
    instance.write(SLEEPER)
    state_dir = instance.state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    with instance_lock(state_dir):
        proc = subprocess.Popen(
            [sys.executable, "-m", "unistack", "up", "-d"],
            cwd=instance.folder,
            env=instance.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        instance.projects.add(None)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed while it waits for the lock this test holds
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return first + rest


def daemon_not_answering(instance: Instance) -> str:
    instance.write(SLEEPER)
    instance.run("up", "-d", check=True)
    pid = int(json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        result = instance.run("ps", timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 1
    return output(result)


def python_too_old(instance: Instance) -> str:
    launcher = instance.folder / "unistack"
    launcher.write_bytes((REPO / "unistack").read_bytes())
    launcher.chmod(0o755)
    old = instance.folder / "python3.9"
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.2"\nexit 1\n')
    old.chmod(0o755)
    env = {**instance.env, "UNISTACK_PYTHON": str(old)}
    result = subprocess.run([str(launcher), "up"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    return output(result)


def database_version(instance: Instance) -> str:
    data = instance.folder / "pgdata"
    data.mkdir()
    (data / "PG_VERSION").write_text("99\n")
    env = {
        **os.environ,
        "PG_DATA_DIR": str(data),
        "PG_SOCKET_DIR": str(instance.folder / "run"),
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "x",
        "POSTGRES_DB": "app",
    }
    script = REPO / "stack" / "db" / "postgres_service.py"
    result = subprocess.run([sys.executable, str(script), "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    return output(result)


BACKED_UP = """
services:
  web:
    volumes: [files:/files]
    x-unistack:
      backup: [{volume: files}]
      process:
        command: ["sleep", "300"]
volumes:
  files: {}
"""


def _archive(instance: Instance) -> Path:
    """A running instance with a backed-up volume, and its archive."""
    instance.write(BACKED_UP)
    instance.run("up", "-d", check=True)
    (instance.state_dir() / "volumes" / "files" / "data.bin").write_bytes(bytes(range(256)) * 64)
    instance.run("backup", check=True)
    return next((instance.state_dir() / "backups").glob("*.tar"))


def archive_incomplete(instance: Instance) -> str:
    archive = _archive(instance)
    cut = instance.folder / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:8000])  # in the middle of the part
    result = instance.run("restore", str(cut), "--yes")
    assert result.returncode == 2
    return output(result)


def archive_damaged(instance: Instance) -> str:
    archive = _archive(instance)
    data = bytearray(archive.read_bytes())
    data[4000] ^= 0x01  # one bit of the part's bytes
    archive.write_bytes(bytes(data))
    result = instance.run("restore", str(archive), "--yes")
    assert result.returncode == 2
    return output(result)


def archive_of_another_project(instance: Instance) -> str:
    archive = _archive(instance)
    instance.run("-p", "other", "up", "-d", check=True)
    result = instance.run("-p", "other", "restore", str(archive), "--yes")
    instance.projects.add("other")
    assert result.returncode == 2
    return output(result)


def restore_needs_yes(instance: Instance) -> str:
    archive = _archive(instance)
    result = instance.run("restore", str(archive))
    assert result.returncode == 2
    return output(result).splitlines()[-1] + "\n"


SCENARIOS: dict[str, Callable[[Instance], str]] = {
    "archive-incomplete": archive_incomplete,
    "archive-damaged": archive_damaged,
    "archive-of-another-project": archive_of_another_project,
    "restore-needs-yes": restore_needs_yes,
    "port-in-use": port_in_use,
    "port-moved": port_moved,
    "missing-variable": missing_variable,
    "no-docker-engine": no_docker_engine,
    "unknown-environment": unknown_environment,
    "not-up": not_up,
    "unknown-service": unknown_service,
    "runtime-switch": runtime_switch,
    "command-not-found": command_not_found,
    "restarts-spent": restarts_spent,
    "isolation-in-process-mode": isolation_in_process_mode,
    "dependency-cycle": dependency_cycle,
    "another-command": another_command,
    "daemon-not-answering": daemon_not_answering,
    "python-too-old": python_too_old,
    "database-version": database_version,
}


def test_every_quoted_message_has_a_scenario_and_every_scenario_a_quote() -> None:
    assert set(quotes()) == set(SCENARIOS)
    assert len(SCENARIOS) >= 12


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_page_quotes_what_unistack_prints(scenario: str, instance: Instance) -> None:
    printed = SCENARIOS[scenario](instance)
    for line in quotes()[scenario].splitlines():
        if line.strip():
            assert pattern(line).search(printed), f"{scenario}: the page says\n  {line}\nunistack printed\n{printed}"


def test_the_placeholders_match_only_what_they_stand_for() -> None:
    assert pattern("process <pid> (python3) listens").search("process 4242 (python3) listens")
    assert not pattern("process <pid> (python3) listens").search("process 4242 (node) listens")
