"""The read-only verbs' fast path prints exactly what the CLI prints: stdout, stderr and exit code, for every form it
answers, on a real running instance; anything else is the CLI's own answer.

The CLI's path is ``unistack.cli.main`` run directly (no fast path); the fast path is the entry point
(``python -m unistack``), run once to store the load and again to answer from it. ``UNISTACK_DEBUG_CACHE=1`` makes
the entry point say on stderr when it answered from the cache; that line aside, the two must agree byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Instance

COMPOSE = """
services:
  web:
    environment:
      DB_PASSWORD: ${DB_PASSWORD:-not-set}
      GREETING: ${GREETING:-hello}
    x-unistack:
      process:
        command: ["sh", "-c", "for n in 1 2 3 4 5 6; do echo web line $$n; done; exec sleep 600"]
  worker:
    depends_on: [web]
    x-unistack:
      process:
        command: ["sh", "-c", "echo worker ready; echo 'worker: ünïcode'; exec sleep 600"]
"""
ANSWERED = "unistack: answered from the load cache\n"
STAGED = ("-f", "compose.yaml", "--env", "staging", "-p", "staged")
FORMS = [
    ("config",),
    ("config", "--format", "json"),
    ("config", "--no-redact"),
    ("config", "--format", "json", "--no-redact"),
    ("ps",),
    ("ps", "--format", "json"),
    ("ps", "worker", "web"),
    ("ps", "--format", "json", "worker"),
    ("logs", "--tail", "100", "web"),
    ("logs", "--tail", "3"),
    ("logs", "-n", "1", "worker", "web"),
    ("--runtime", "auto", "logs", "--tail", "2"),
]
NOT_ANSWERED = [
    ("ps", "--bogus"),
    ("ps", "nosuch"),
    ("logs", "--tail", "x"),
    ("config", "--format", "xml"),
    ("logs", "--tail", "2", "nosuch"),
    ("--runtime", "nosuch", "logs", "--tail", "2"),
]


def by_the_cli(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", "from unistack.cli import main; main()", *args]
    return subprocess.run(argv, cwd=instance.folder, env=instance.env, capture_output=True, text=True, timeout=60)


def answered(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    """The entry point's answer from the cache: the first run stores the load; a run after it misses only when
    the code changed in between (another engineer's edit in a shared working tree), so it is tried a few times."""
    for _ in range(5):
        result = instance.run(*args)
        if result.stderr.startswith(ANSWERED):
            return result
    raise AssertionError(f"never answered from the cache: {args}: {result.stderr}")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    folder = tmp_path_factory.mktemp("fastpath") / "demo"
    folder.mkdir()
    instance = Instance(folder)
    instance.env |= {
        "XDG_CACHE_HOME": str(folder.parent / "cache"),
        "UNISTACK_DEBUG_CACHE": "1",
        "DB_PASSWORD": "s3cret-value",
        "LC_ALL": "C.UTF-8",
    }
    instance.write(COMPOSE)
    (folder / "environments").mkdir()
    (folder / "environments" / "staging.env").write_text("GREETING=staged\n")
    try:
        instance.run("up", "-d", check=True)
        instance.run(*STAGED, "up", "-d", check=True)
        for options in ((), STAGED):

            def logged(options: tuple[str, ...] = options) -> bool:
                return by_the_cli(instance, *options, "logs", "--tail", "100").stdout.count("\n") == 8

            instance.wait_for(logged, message="every service's lines logged")
        yield instance
    finally:
        instance.projects |= {None}
        instance.run(*STAGED, "down", "-t", "1")
        instance.teardown()


@pytest.mark.parametrize("options", [(), STAGED], ids=["defaults", "-f --env -p"])
@pytest.mark.parametrize("form", FORMS, ids=" ".join)
def test_the_fast_path_prints_what_the_cli_prints(
    running: Instance, options: tuple[str, ...], form: tuple[str, ...]
) -> None:
    args = (*options, *form)
    fast = answered(running, *args)
    cli = by_the_cli(running, *args)
    assert (fast.stdout, fast.stderr.removeprefix(ANSWERED), fast.returncode) == (
        cli.stdout,
        cli.stderr,
        cli.returncode,
    )
    assert cli.returncode == 0 and cli.stdout
    if form[0] == "config" and "--no-redact" not in form:
        assert "s3cret-value" not in fast.stdout


@pytest.mark.parametrize("form", NOT_ANSWERED, ids=" ".join)
def test_what_the_fast_path_does_not_answer_is_the_cli_s(running: Instance, form: tuple[str, ...]) -> None:
    running.run("ps")  # the load stored: the forms below still go to the CLI
    fast = running.run(*form)
    cli = by_the_cli(running, *form)
    assert ANSWERED not in fast.stderr
    assert (fast.stdout, fast.stderr, fast.returncode) == (cli.stdout, cli.stderr, cli.returncode)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    if form == ("ps", "--bogus"):
        assert cli.stderr.startswith("Usage: unistack ps") and "No such option '--bogus'" in cli.stderr


def test_a_daemon_on_the_short_private_socket_path_answers_too(running: Instance) -> None:
    project = "a-project-name-long-enough-that-its-socket-path-does-not-fit-in-a-unix-socket-address"
    assert len(str(running.state_dir(project) / "run" / "daemon.sock")) > 100
    running.run("up", "-d", check=True, project=project)
    try:
        running.wait_for(
            lambda: by_the_cli(running, "-p", project, "logs", "--tail", "100").stdout.count("\n") == 8,
            message="every service's lines logged",
        )
        for form in (("ps",), ("logs", "--tail", "2", "worker")):
            args = ("-p", project, *form)
            fast = answered(running, *args)
            cli = by_the_cli(running, *args)
            assert (fast.stdout, fast.stderr.removeprefix(ANSWERED), fast.returncode) == (
                cli.stdout,
                cli.stderr,
                cli.returncode,
            )
            assert "worker" in cli.stdout
    finally:
        running.run("down", "-t", "1", project=project)


def test_a_changed_file_is_loaded_again(running: Instance) -> None:
    answered(running, "config")
    compose = running.folder / "compose.yaml"
    text = compose.read_text()
    try:
        compose.write_text(text.replace("GREETING: ${GREETING:-hello}", "GREETING: ${GREETING:-howdy}"))
        fast = running.run("config")
        assert ANSWERED not in fast.stderr and "howdy" in fast.stdout
        assert fast.stdout == by_the_cli(running, "config").stdout
    finally:
        compose.write_text(text)


def test_the_cache_is_private(running: Instance) -> None:
    running.run("config", "--no-redact")
    folder = Path(running.env["XDG_CACHE_HOME"]) / "unistack" / "loads"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}
