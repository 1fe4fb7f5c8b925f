"""Where values came from: variables (shell, env file and line, default, unistack), keys (the winning file and
line), and required variables that are not set (one problem each, or a marker when loading leniently)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack.config import examine, load, load_detailed
from unistack.config.interpolation import marker
from unistack.config.sources import VariableSource
from unistack.errors import ConfigError

Write = Callable[..., Path]  # the `write` fixture (conftest.py)

COMPOSE = """
name: demo
services:
  web:
    image: "web:${TAG:-latest}"
    ports: ["127.0.0.1:${PORT:-8000}:80"]
    environment:
      LEVEL: ${LEVEL}
      MODE: ${MODE:-dev}
      DATABASE_URL: "postgresql://app:${DB_PASSWORD:?set DB_PASSWORD}@db/app"
      STATE: ${UNISTACK_STATE_DIR}/web
    x-unistack: {process: {command: [sleep, "1"]}}
"""


def test_a_variable_from_the_shell_an_env_file_line_or_the_default(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", COMPOSE)
    write("environments/stg.env", "# staging\nPORT=8081\n\nLEVEL=info\nDB_PASSWORD=from-file\n")
    loaded = load_detailed(cwd=tmp_path, env={"LEVEL": "debug", "DB_PASSWORD": "s3cret"}, env_name="stg")
    sources = loaded.variable_sources
    env_file = tmp_path / "environments" / "stg.env"
    assert sources["PORT"] == VariableSource("file", env_file, 2)
    assert sources["LEVEL"] == VariableSource("shell")  # the shell wins over the file
    assert sources["TAG"] == VariableSource("default", tmp_path / "compose.yaml", 4)
    assert sources["MODE"].origin == "default"
    assert sources["UNISTACK_STATE_DIR"].origin == "unistack"
    assert sources["PORT"].describe(tmp_path) == "environments/stg.env:2"
    assert sources["LEVEL"].describe(tmp_path) == "your shell"
    assert sources["TAG"].describe(tmp_path) == "its default in compose.yaml:4"
    project = loaded.checked()
    assert project.services["web"].environment["LEVEL"] == "debug"


def test_the_uses_of_a_variable_are_recorded_with_file_line_and_key(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", COMPOSE)
    loaded = load_detailed(cwd=tmp_path, env={"DB_PASSWORD": "x"})
    uses = {u.variable: u for u in loaded.uses}
    assert uses["PORT"].key == ("services", "web", "ports", 0)
    assert uses["PORT"].line == 5 and uses["PORT"].argument == "8000" and uses["PORT"].has_default
    assert uses["DB_PASSWORD"].required
    assert [u.variable for u in loaded.uses_at(("services", "web", "environment", "MODE"))] == ["MODE"]


def test_an_overlays_value_wins_with_its_line(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", COMPOSE)
    write("compose.stg.yaml", "services:\n  web:\n    environment:\n      MODE: static\n")
    loaded = load_detailed(cwd=tmp_path, env={"DB_PASSWORD": "x"}, env_name="stg")
    assert loaded.checked().services["web"].environment["MODE"] == "static"
    assert loaded.origin(("services", "web", "environment", "MODE")) == (tmp_path / "compose.stg.yaml", 4)
    assert loaded.origin(("services", "web", "environment", "LEVEL")) == (tmp_path / "compose.yaml", 7)


def test_a_missing_required_variable_is_one_line_naming_every_use(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        COMPOSE + "  worker:\n    image: w\n    environment:\n      PASSWORD: ${DB_PASSWORD}\n"
        "      URL: ${DB_PASSWORD:?}\n    x-unistack: {process: {command: [sleep, '1']}}\n",
    )
    write("environments/stg.env", "PORT=1\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={}, env_name="stg")
    (problem,) = raised.value.problems
    assert problem.variable == "DB_PASSWORD"
    assert str(problem) == (
        "DB_PASSWORD is not set (required by compose.yaml:9 services.web.environment.DATABASE_URL, "
        "compose.yaml:15 services.worker.environment.PASSWORD, compose.yaml:16 services.worker.environment.URL): "
        "set DB_PASSWORD in environments/stg.env or your shell"
    )
    assert (problem.file, problem.line, problem.key) == (
        tmp_path / "compose.yaml",
        9,
        "services.web.environment.DATABASE_URL",
    )


def test_the_authors_message_is_kept_when_it_says_more(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  a:\n    image: ${IMAGE:?the image to run, e.g. nginx}\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    assert 'compose.yaml:3 services.a.image: "the image to run, e.g. nginx"' in str(raised.value)


def test_lenient_loading_marks_missing_required_variables(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", COMPOSE)
    loaded = examine(cwd=tmp_path, env={}, lenient=True)
    assert loaded.problems == []
    assert [p.variable for p in loaded.missing] == ["DB_PASSWORD"]
    url = loaded.checked().services["web"].environment["DATABASE_URL"]
    assert url == f"postgresql://app:{marker('DB_PASSWORD')}@db/app"


def test_examine_reports_what_does_not_load_without_raising(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", COMPOSE)
    loaded = examine(cwd=tmp_path, env={"PORT": "abc"}, lenient=True)
    assert loaded.project is None
    assert any(p.key == "services.web.ports[0]" for p in loaded.problems)
    assert [p.variable for p in loaded.missing] == ["DB_PASSWORD"]
    with pytest.raises(ConfigError):
        loaded.checked()
