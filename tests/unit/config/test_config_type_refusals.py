"""Wherever a mapping, list or scalar is expected and something else is given: one clear ConfigError (exit 2) with
the file, line and key, never a traceback. The Compose schema finds most of them (config/schema.py); unistack's own
x-unistack keys are checked by config/build.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack.cli import main
from unistack.config import load
from unistack.errors import ConfigError

Write = Callable[..., Path]

BASE = "services:\n  web:\n    image: nginx\n"

# (the file's text, the key reported, a fragment of the message, the line)
CASES = [
    ("services: 3\n", "services", "services must be a mapping, not the number 3", 1),
    ("services: [web]\n", "services", "services must be a mapping, not a list", 1),
    (BASE + "networks: [a, b]\n", "networks", "networks must be a mapping, not a list", 4),
    (BASE + "volumes: data\n", "volumes", "volumes must be a mapping, not the string 'data'", 4),
    (BASE + "networks:\n  front: bridge\n", "networks.front", "front must be a mapping or empty", 5),
    (BASE + "volumes:\n  data: [1]\n", "volumes.data", "data must be a mapping or empty, not a list", 5),
    (BASE + "secrets: 1\n", "secrets", "secrets must be a mapping", 4),
    ("services:\n  web: nginx\n", "services.web", "web must be a mapping, not the string 'nginx'", 2),
    (BASE + "    environment: 5\n", "services.web.environment", "a mapping (KEY: value) or a list of KEY=value", 4),
    (BASE + "    ports: {a: b}\n", "services.web.ports", "ports must be a list", 4),
    (BASE + "    ports: [[80]]\n", "services.web.ports[0]", "a number, a string or a mapping, not a list", 4),
    (BASE + '    healthcheck: "x"\n', "services.web.healthcheck", "healthcheck must be a mapping", 4),
    (BASE + "    healthcheck: {test: 5}\n", "services.web.healthcheck.test", "a string or a list", 4),
    (BASE + "    healthcheck: {interval: [1]}\n", "services.web.healthcheck.interval", "must be a string", 4),
    (BASE + "    depends_on: 7\n", "services.web.depends_on", "a list of strings or a mapping, not the number 7", 4),
    (BASE + "    depends_on: {db: 1}\n", "services.web.depends_on.db", "db must be a mapping", 4),
    (BASE + "    command: {a: 1}\n", "services.web.command", "a command (a string or a list of strings)", 4),
    (BASE + "    container_name: [web]\n", "services.web.container_name", "must be a string, not a list", 4),
    (BASE + "    restart: [always]\n", "services.web.restart", "restart must be a string", 4),
    (BASE + "    labels: 3\n", "services.web.labels", "a mapping (KEY: value) or a list of KEY=value", 4),
    (BASE + "    build: 3\n", "services.web.build", "build must be a string or a mapping", 4),
    (BASE + "    deploy: {resources: 5}\n", "services.web.deploy.resources", "resources must be a mapping", 4),
    (BASE + "    volumes: {a: b}\n", "services.web.volumes", "volumes must be a list", 4),
    (BASE + "    env_file: {a: 1}\n", "services.web.env_file", "a path or a list of paths", 4),
    (BASE + "    profiles: 3\n", "services.web.profiles", "profiles must be a list", 4),
    (BASE + "    networks: 3\n", "services.web.networks", "networks must be a list of strings or a mapping", 4),
    (BASE + "    x-unistack: []\n", "services.web.x-unistack", "x-unistack must be a mapping", 4),
    (BASE + '    x-unistack: {process: "cmd"}\n', "services.web.x-unistack.process", "x-unistack.process must be", 4),
    (BASE + "    x-unistack: {restart: 3}\n", "services.web.x-unistack.restart", "x-unistack.restart must be", 4),
    (BASE + "x-unistack: {notify: 3}\n", "x-unistack.notify", "x-unistack.notify must be a list", 4),
    (BASE + "include: 3\n", "include", "include must be a list", 4),
    (BASE + "name: 3\n", "name", "name must be a string, not the number 3", 4),
    ("servces: {}\n" + BASE, "servces", "unknown top-level key 'servces'", 1),
    (BASE + "    depend_on: [db]\n", "services.web.depend_on", "service 'web' has unknown key 'depend_on'", 4),
    ("services:\n  my web: {image: x}\n", "services.my web", "'my web' is not a valid service name", 2),
]


@pytest.mark.parametrize(("text", "key", "message", "line"), CASES, ids=[c[1] + ":" + c[2][:24] for c in CASES])
def test_a_wrong_type_is_one_clear_problem(
    write: Write, tmp_path: Path, text: str, key: str, message: str, line: int
) -> None:
    path = write("compose.yaml", text)
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    found = [p for p in raised.value.problems if p.key == key]
    assert found, [str(p) for p in raised.value.problems]
    assert message in found[0].message, str(found[0])
    assert (found[0].file, found[0].line) == (path, line)


def test_every_wrong_type_in_a_file_is_reported_at_once(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        BASE + "    environment: 5\n    ports: {a: b}\n    depends_on: 7\n    x-unistack: []\n"
        "networks: [a]\nvolumes: data\n",
    )
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    keys = [p.key for p in raised.value.problems]
    assert set(keys) >= {
        "services.web.environment",
        "services.web.ports",
        "services.web.depends_on",
        "services.web.x-unistack",
        "networks",
        "volumes",
    }
    lines = [p.line or 0 for p in raised.value.problems]
    assert lines == sorted(lines)  # in the order of the file


def test_an_overlay_is_checked_as_written_and_named(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", BASE)
    overlay = write("compose.local.yaml", "services:\n  web:\n    environment: 5\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    (problem,) = raised.value.problems
    assert (problem.file, problem.line, problem.key) == (overlay, 3, "services.web.environment")


def test_interpolated_values_are_checked_after_interpolation(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", BASE + "    ports: ['${PORT:-8080}:80']\n    healthcheck: {retries: '${R:-3}', test: x}\n")
    assert load(cwd=tmp_path, env={}).services["web"].healthcheck is not None


@pytest.mark.parametrize(
    "text",
    ["services: 3\n", BASE + "    environment: 5\n", BASE + "    x-unistack: {process: cmd}\n", "x: " + "[" * 500],
)
def test_through_the_cli_exit_2_and_no_traceback(
    write: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write("compose.yaml", text)
    with pytest.raises(SystemExit) as exited:
        main(["-f", str(path), "config"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(path) in err


# --- the files named by include: and extends: are checked as the top-level files are ---------------------------


def test_an_included_file_is_checked_with_its_own_name_and_lines(write: Write, tmp_path: Path) -> None:
    main_file = write("compose.yaml", "include:\n  - lib/compose.yaml\n" + BASE + "    environment: 5\n")
    included = write("lib/compose.yaml", "services:\n  lib:\n    image: x\n    ports: {a: b}\n    depend_on: [web]\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    found = {(p.file, p.line, p.key) for p in raised.value.problems}
    assert found == {  # every file's violations in one run
        (main_file, 6, "services.web.environment"),
        (included, 4, "services.lib.ports"),
        (included, 5, "services.lib.depend_on"),
    }, [str(p) for p in raised.value.problems]


def test_a_file_included_by_an_included_file_is_checked_too(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "include: [middle.yaml]\n" + BASE)
    write("middle.yaml", "include: [inner/inner.yaml]\nservices:\n  middle: {image: x}\n")
    inner = write("inner/inner.yaml", "services:\n  inner:\n    image: x\n    restart: [always]\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    (problem,) = raised.value.problems
    assert (problem.file, problem.line, problem.key) == (inner, 4, "services.inner.restart")


def test_an_included_file_is_checked_after_its_own_interpolation(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "include: [lib.yaml]\n" + BASE)
    write("lib.yaml", "services:\n  lib:\n    image: x\n    healthcheck: {test: x, retries: '${R:-3}'}\n")
    assert load(cwd=tmp_path, env={}).services["lib"].healthcheck is not None


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("services: [lib]\n", "services", "services must be a mapping, not a list"),  # was a traceback (rebase)
        ("services:\n  lib: 5\n", "services.lib", "lib must be a mapping, not the number 5"),
        ("volumes: data\nservices: {}\n", "volumes", "volumes must be a mapping"),
        ("include: 3\n", "include", "include must be a list"),
    ],
)
def test_an_included_file_of_the_wrong_shape_is_a_clear_problem(
    write: Write, tmp_path: Path, text: str, key: str, message: str
) -> None:
    write("compose.yaml", "include: [lib.yaml]\n" + BASE)
    included = write("lib.yaml", text)
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    found = [p for p in raised.value.problems if p.key == key]
    assert found and found[0].file == included and found[0].line is not None, [str(p) for p in raised.value.problems]
    assert message in found[0].message


def test_an_extended_service_is_checked_as_written_in_its_file(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    extends: {file: base.yaml, service: base}\n    ports: {a: b}\n")
    base = write("base.yaml", "services:\n  base:\n    image: x\n    restart: 5\n    bogus: 1\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    found = {(p.file, p.line, p.key) for p in raised.value.problems}
    assert found == {
        (tmp_path / "compose.yaml", 4, "services.web.ports"),
        (base, 4, "services.base.restart"),
        (base, 5, "services.base.bogus"),
    }, [str(p) for p in raised.value.problems]


def test_an_extended_service_of_the_wrong_shape_is_named_in_its_file(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    extends: {file: base.yaml, service: base}\n")
    base = write("base.yaml", "services:\n  base: 5\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    problems = {p.key: p for p in raised.value.problems}
    assert (problems["services.base"].file, problems["services.base"].line) == (base, 2)
    assert "is not valid" in problems["services.web.extends"].message


def test_the_services_an_extended_file_has_but_nobody_extends_are_not_checked(write: Write, tmp_path: Path) -> None:
    """As Compose v2, which checks what a service takes from another file, never the rest of that file."""
    write("compose.yaml", "services:\n  web:\n    extends: {file: base.yaml, service: base}\n")
    write("base.yaml", "services:\n  base: {image: x}\n  other:\n    image: y\n    restart: 5\n")
    assert load(cwd=tmp_path, env={}).services["web"].spec["image"] == "x"


def test_an_included_file_through_the_cli_exit_2_no_traceback(
    write: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("compose.yaml", "include: [lib.yaml]\n" + BASE)
    included = write("lib.yaml", "services: [lib]\n")
    with pytest.raises(SystemExit) as exited:
        main(["-f", str(path), "config"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{included}:1 (services)" in err
