"""Profiles, include and extends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack.config import load
from unistack.errors import ConfigError

Write = Callable[..., Path]  # the `write` fixture (conftest.py)

PROFILED = """
services:
  web:
    image: web
    depends_on:
      debug: {condition: service_started, required: false}
  db:
    image: db
  debug:
    image: debug
    profiles: [debug]
  tools:
    image: tools
    profiles: [tools, ops]
"""


def test_services_with_profiles_are_inactive_by_default(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", PROFILED)
    project = load(cwd=tmp_path, env={})
    assert set(project.services) == {"web", "db"}
    assert project.services["web"].depends_on == {}


def test_profiles_enable_services(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", PROFILED)
    assert set(load(cwd=tmp_path, env={}, profiles=["ops"]).services) == {"web", "db", "tools"}
    assert set(load(cwd=tmp_path, env={"COMPOSE_PROFILES": "debug,ops"}).services) == {"web", "db", "debug", "tools"}
    assert len(load(cwd=tmp_path, env={}, profiles=["*"]).services) == 4
    assert load(cwd=tmp_path, env={}, profiles=["debug"]).services["web"].depends_on["debug"].required is False


def test_required_dependency_on_a_disabled_service_names_the_profile(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  web:\n    image: w\n    depends_on: [debug]\n  debug:\n    image: d\n    profiles: [dbg]\n",
    )
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    problem = raised.value.problems[0]
    assert "'debug'" in problem.message and "dbg" in problem.message
    assert problem.fix is not None and "--profile dbg" in problem.fix
    assert problem.line == 4


def test_include_adds_services_with_their_own_folder_and_env(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        include:
          - shared/compose.yaml
          - path: other/compose.yaml
            env_file: other/custom.env
        services:
          web:
            image: web
            depends_on: [cache, queue]
        """,
    )
    write(
        "shared/compose.yaml",
        """
        services:
          cache:
            image: redis:${REDIS_TAG}
            volumes: ["./data:/data"]
            x-unistack:
              process: {command: [redis-server], working_dir: ./run}
        volumes:
          cachedata: {}
        """,
    )
    write("shared/.env", "REDIS_TAG=7\n")
    write("other/compose.yaml", "services:\n  queue:\n    image: q:${Q_TAG}\n")
    write("other/custom.env", "Q_TAG=3\n")
    project = load(cwd=tmp_path, env={})
    cache = project.services["cache"]
    assert cache.spec["image"] == "redis:7"
    assert cache.spec["volumes"][0]["source"] == str(tmp_path / "shared" / "data")
    assert cache.process is not None and cache.process.working_dir == tmp_path / "shared" / "run"
    assert project.services["queue"].spec["image"] == "q:3"
    assert "cachedata" in project.volumes
    assert "include" not in project.spec


def test_include_conflict_is_an_error(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "include: [shared.yaml]\nservices:\n  web:\n    image: mine\n")
    write("shared.yaml", "services:\n  web:\n    image: theirs\n")
    with pytest.raises(ConfigError, match=r"services\.web is defined here and also in included"):
        load(cwd=tmp_path, env={})


def test_extends_same_file_and_other_file(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          base:
            image: app
            environment: {A: "1", B: "1"}
            command: [run, base]
          web:
            extends: base
            environment: {B: "2"}
            command: [run, web]
          worker:
            extends:
              service: common
              file: lib/common.yaml
            environment: {C: "3"}
        """,
    )
    write(
        "lib/common.yaml",
        """
        services:
          common:
            extends: {service: root}
            env_file: common.env
          root:
            image: root
            volumes: ["./x:/x"]
        """,
    )
    write("lib/common.env", "FROM_FILE=1\n")
    project = load(cwd=tmp_path, env={})
    web = project.services["web"]
    assert web.environment == {"A": "1", "B": "2"}
    assert web.spec["command"] == ["run", "web"]
    assert "extends" not in web.spec
    worker = project.services["worker"]
    assert worker.spec["image"] == "root"
    assert worker.environment == {"FROM_FILE": "1", "C": "3"}
    assert worker.spec["volumes"][0]["source"] == str(tmp_path / "lib" / "x")


def test_extends_cycle_and_unknown_base(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  a:\n    extends: b\n  b:\n    extends: a\n  c:\n    image: c\n    extends: nope\n",
    )
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    text = str(raised.value)
    assert "extends cycle: a -> b -> a" in text
    assert "'nope', which does not exist" in text
    assert "compose.yaml:8" in text
