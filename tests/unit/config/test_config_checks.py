"""Bad input: every problem is found, located (file, line, key or service) and explained, all at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack.config import load
from unistack.errors import ConfigError, Problem

Write = Callable[..., Path]  # the `write` fixture (conftest.py)


def _load_problems(tmp_path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    return raised.value.problems


def _one(problems: list[Problem], text: str) -> Problem:
    found = [p for p in problems if text in p.message]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def test_unknown_key_suggests_the_closest(write: Write, tmp_path: Path) -> None:
    path = write("compose.yaml", "services:\n  web:\n    image: x\n    depends: [db]\n  db:\n    image: y\n")
    problem = _one(_load_problems(tmp_path), "unknown key 'depends'")
    assert (problem.file, problem.line, problem.key) == (path, 4, "services.web.depends")
    assert problem.fix == "did you mean 'depends_on'?"


def test_unknown_top_level_and_x_unistack_keys(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "servces: {}\nservices:\n  web:\n    image: x\n    x-unistack: {proces: {command: [a]}}\n    x-other: 1\n",
    )
    problems = _load_problems(tmp_path)
    assert _one(problems, "unknown top-level key 'servces'").fix == "did you mean 'services'?"
    assert _one(problems, "unknown x-unistack key 'proces'").fix == "did you mean 'process'?"


def test_every_problem_is_reported_at_once(write: Write, tmp_path: Path) -> None:
    path = write(
        "compose.yaml",
        """\
services:
  a:
    image: a
    restart: sometimes
    depends_on: [b, ghost]
    healthcheck:
      test: ["CMD", "true"]
      interval: 10 parsecs
      retries: -1
    ports: ["8080:80"]
  b:
    image: b
    depends_on:
      a: {condition: service_healthy}
    ports: ["127.0.0.1:8080:81"]
    stop_grace_period: soon
""",
    )
    problems = _load_problems(tmp_path)
    restart = _one(problems, "restart 'sometimes'")
    assert (restart.file, restart.line, restart.key) == (path, 4, "services.a.restart")
    assert "no, always, on-failure, unless-stopped" in restart.message
    duration = _one(problems, "'10 parsecs' is not a duration")
    assert (duration.line, duration.key) == (8, "services.a.healthcheck.interval")
    assert _one(problems, "retries").line == 9
    ghost = _one(problems, "'ghost'")
    assert ghost.line == 5 and "known: a, b" in ghost.message
    cycle = _one(problems, "dependency cycle")
    assert "a -> b -> a" in cycle.message
    conflict = _one(problems, "both publish host port 8080/tcp")
    assert conflict.key == "services.b.ports[0]" and conflict.line == 15
    assert _one(problems, "'soon' is not a duration").line == 16
    assert len(problems) == 7


def test_ports_on_different_interfaces_or_protocols_do_not_conflict(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """\
services:
  a: {image: a, ports: ["127.0.0.1:8080:80", "53:53/udp"]}
  b: {image: b, ports: ["127.0.0.2:8080:80", "53:53/tcp", "80"]}
""",
    )
    assert len(load(cwd=tmp_path, env={}).services) == 2


def test_optional_dependency_on_a_missing_service_is_fine(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  a:\n    image: a\n    depends_on:\n      ghost: {condition: service_started, required: false}\n",
    )
    service = load(cwd=tmp_path, env={}).services["a"]
    assert service.depends_on == {}
    assert service.spec["depends_on"]["ghost"]["required"] is False


def test_bad_condition_lists_the_known_ones(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  a: {image: a}\n  b:\n    image: b\n    depends_on:\n      a: {condition: service_ready}\n",
    )
    problem = _one(_load_problems(tmp_path), "service_ready")
    assert problem.line == 6 and "service_healthy" in problem.message


def test_bad_sizes_ports_and_healthcheck_tests(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """\
services:
  a:
    image: a
    mem_limit: lots
    ports: ["http:80"]
    healthcheck: {test: ["RUN", "x"]}
""",
    )
    problems = _load_problems(tmp_path)
    assert _one(problems, "byte size").line == 4
    assert _one(problems, "is not a valid port").key == "services.a.ports[0]"
    assert _one(problems, "CMD").line == 6


def test_bad_x_unistack_values(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """\
services:
  a:
    image: a
    x-unistack:
      process: {command: {run: x}, cwd: /}
      restart: {max_attempts: -2, backoff_max: forever}
x-unistack:
  notify:
    - {command: [a], webhook: http://x}
    - {webhook: http://x, timeout: later}
""",
    )
    problems = _load_problems(tmp_path)
    assert _one(problems, "command must be a list or a string").line == 5
    assert _one(problems, "'cwd'").line == 5
    assert _one(problems, "-2").line == 6
    assert _one(problems, "'forever'").line == 6
    assert _one(problems, "exactly one of command or webhook").key == "x-unistack.notify[0]"
    assert _one(problems, "'later'").line == 10


def test_service_must_be_a_mapping(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  a: [x]\n")
    assert _one(_load_problems(tmp_path), "must be a mapping").line == 2


def test_missing_env_file_of_a_service(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml", "services:\n  a:\n    image: a\n    env_file: [missing.env, {path: opt.env, required: false}]\n"
    )
    problem = _one(_load_problems(tmp_path), "missing.env")
    assert problem.line == 4
