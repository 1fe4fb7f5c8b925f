"""The env verbs through the real CLI: on the stack's own environments, and the saved-state fallback of the
commands that only look at or stop an instance (ps, logs, stop, down) when its files no longer load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

STACK = Path(__file__).resolve().parents[2] / "stack"
SHELL_VARIABLES = ("POSTGRES_PASSWORD", "HTTP_PORT", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "UNISTACK_ENV")


def unistack(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SHELL_VARIABLES}
    env.update(NO_COLOR="1", **extra)
    return subprocess.run(
        [sys.executable, "-m", "unistack", *args], cwd=STACK, env=env, capture_output=True, text=True, timeout=60
    )


def test_env_list_shows_the_stacks_environments() -> None:
    result = unistack("env", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = {e["name"]: e for e in json.loads(result.stdout)}
    assert {"local", "staging", "production"} <= set(listed)
    assert listed["local"]["project"] == "stack"
    assert listed["staging"]["project"] == "stack-staging"
    assert listed["production"]["project"] == "stack-production"
    assert listed["local"]["addresses"] == ["http://127.0.0.1:8080"]
    assert listed["staging"]["addresses"] == ["http://127.0.0.1:8081"]
    assert listed["production"]["addresses"] == ["http://127.0.0.1:8082"]
    assert listed["staging"]["files"] == ["environments/staging.env"]
    assert listed["production"]["files"] == ["environments/production.env", "compose.production.yaml"]
    assert listed["staging"]["missing"] == ["POSTGRES_PASSWORD"]
    text = unistack("env", "list")
    assert "stack-staging" in text.stdout and "http://127.0.0.1:8081" in text.stdout


def test_env_diff_local_staging_shows_differences_with_their_sources() -> None:
    result = unistack("env", "diff", "local", "staging")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "note: staging: POSTGRES_PASSWORD: not set (required)" in out
    assert "FRONTEND_MODE=static (environments/staging.env:" in out
    assert "HTTP_PORT=8081 (environments/staging.env:" in out
    assert "HTTP_PORT=8080 (environments/local.env:" in out
    assert "DEBUG=false (environments/staging.env:" in out
    assert "local-dev-only-password" not in out
    assert "Traceback" not in result.stderr
    data = json.loads(unistack("env", "diff", "local", "staging", "--format", "json").stdout)
    keys = {d["key"] for d in data["differences"]}
    assert {"services.proxy.ports", "services.backend.environment.DEBUG", "name"} <= keys
    assert data["only_in"]["local"][0]["service"] == "frontend"
    shell = unistack("env", "diff", "local", "staging", HTTP_PORT="9000", POSTGRES_PASSWORD="pw12345678")
    # the shell wins over both env files: the same port and password on both sides, so no longer a difference
    assert "services.proxy.ports" not in shell.stdout and "HTTP_PORT" not in shell.stdout
    assert "note:" not in shell.stdout and "pw12345678" not in shell.stdout
    assert "FRONTEND_MODE=static (environments/staging.env:" in shell.stdout


def test_env_check_staging_names_the_password_once() -> None:
    result = unistack("env", "check", "staging")
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "POSTGRES_PASSWORD" in line]
    assert len(lines) == 1, result.stdout
    assert "compose.yaml:" in lines[0] and "services.backend.environment.DATABASE_URL" in lines[0]
    assert lines[0].endswith("set POSTGRES_PASSWORD in environments/staging.env or your shell")
    every = unistack("env", "check", "--all")
    assert every.returncode == 1 and "local: ok" in every.stdout and "production: 1 problem" in every.stdout
    assert unistack("env", "check", "--all", POSTGRES_PASSWORD="pw12345678").returncode == 0
    unknown = unistack("env", "check", "nope")
    assert unknown.returncode == 2 and "known: local, production, staging" in unknown.stderr


def test_a_missing_variable_is_one_line_for_every_command() -> None:
    result = unistack("--env", "staging", "config")
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and problems[0].startswith("  - POSTGRES_PASSWORD is not set (required by compose.yaml:")
    assert problems[0].count("set POSTGRES_PASSWORD") == 1


# --- the saved state ------------------------------------------------------------------------------------------

COMPOSE = """\
name: demo
services:
  app:
    environment:
      API_TOKEN: ${TOKEN:?set TOKEN}
    x-unistack:
      process:
        command: ["sh", "-c", "echo app says hello; exec sleep 300"]
"""


def test_look_and_stop_commands_use_the_saved_project_when_the_files_do_not_load(instance: Instance) -> None:
    instance.write(COMPOSE)
    (instance.folder / "environments").mkdir()
    (instance.folder / "environments" / "stg.env").write_text("COMPOSE_PROJECT_NAME=demo-stg\n")
    instance.env["TOKEN"] = "abcd1234"
    instance.run("--env", "stg", "up", "--wait", check=True, project=None)
    instance.projects.add("demo-stg")  # the fixture's teardown brings it down
    instance.env.pop("TOKEN")  # a new shell: the configuration no longer loads
    note = "the configuration does not load (TOKEN is not set); using the one demo-stg was started with"

    ps = instance.run("--env", "stg", "ps", "--format", "json")
    assert ps.returncode == 0, ps.stderr
    assert note in ps.stderr
    assert json.loads(ps.stdout)[0]["state"] == "running"

    logs = instance.wait_for(lambda: (r := instance.run("--env", "stg", "logs")) and "hello" in r.stdout and r)
    assert note in logs.stderr

    validate = instance.run("--env", "stg", "validate", "--format", "json")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert note in validate.stderr
    verdicts = {r["name"]: r for r in json.loads(validate.stdout)}
    assert verdicts["app ready"]["verdict"] == "pass"
    assert verdicts["configuration unchanged"]["verdict"] == "skip"
    assert "TOKEN is not set" in verdicts["configuration unchanged"]["detail"]

    (instance.folder / "compose.yaml").unlink()  # the file itself gone
    stop = instance.run("--env", "stg", "stop")
    assert stop.returncode == 0, stop.stderr
    assert "does not load (no compose file" in stop.stderr and "stopped" in stop.stdout

    down = instance.run("--env", "stg", "down")
    assert down.returncode == 0, down.stderr
    assert "demo-stg: stopped" in down.stdout

    instance.write(COMPOSE)  # nothing runs any more: the configuration error stands
    after = instance.run("--env", "stg", "ps")
    assert after.returncode == 2
    assert "TOKEN is not set" in after.stderr and "using the one" not in after.stderr
