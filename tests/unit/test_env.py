"""env diff, env check and env new on small projects in a temp folder (no shell variables: ``env`` is given)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from unistack.cli import main
from unistack.errors import UsageError
from unistack.ops import env, env_diff, scaffold

COMPOSE = """
name: demo
services:
  web:
    image: "web:${TAG:-latest}"
    ports: ["127.0.0.1:${PORT:-8000}:80"]
    environment:
      MODE: ${MODE:-dev}
      API_TOKEN: ${API_TOKEN:-}
      DATABASE_URL: "postgresql://app:${DB_PASSWORD:?set DB_PASSWORD}@db/app"
      NOTE: "password is ${DB_PASSWORD:-}, keep it"
      STATE: ${UNISTACK_STATE_DIR}/web
    x-unistack: {process: {command: [sleep, "1"]}}
  worker:
    profiles: [jobs]
    image: worker
    x-unistack: {process: {command: [sleep, "1"]}}
"""


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"compose.yaml": COMPOSE, **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "compose.yaml"


def diff(main_file: Path, left: str, right: str, shell: dict[str, str] | None = None) -> env_diff.EnvDiff:
    a = env.load_environment(main_file, left, env=shell or {})
    b = env.load_environment(main_file, right, env=shell or {})
    return env_diff.diff(left, a, right, b)


# --- env diff -------------------------------------------------------------------------------------------------


def test_differences_show_the_value_the_file_line_and_the_variables_source(tmp_path: Path) -> None:
    main_file = project(
        tmp_path,
        {
            "environments/local.env": "MODE=dev\nDB_PASSWORD=hunter22\n",
            "environments/stg.env": "COMPOSE_PROJECT_NAME=demo-stg\nCOMPOSE_PROFILES=jobs\nPORT=8081\nMODE=static\n",
        },
    )
    result = diff(main_file, "local", "stg", {"DB_PASSWORD": "from-the-shell"})
    assert not result.equal
    by_key = {d.key: d for d in result.differences}
    ports = by_key["services.web.ports"]
    assert (ports.left.value, ports.right.value) == ("127.0.0.1:8000->80/tcp", "127.0.0.1:8081->80/tcp")
    assert ports.right.origin == "compose.yaml:5"
    assert [v.text for v in ports.right.variables] == ["PORT=8081 (environments/stg.env:3)"]
    assert [v.text for v in ports.left.variables] == ["PORT not set: its default in compose.yaml:5 (8000)"]
    mode = by_key["services.web.environment.MODE"]
    assert [v.text for v in mode.left.variables] == ["MODE=dev (environments/local.env:1)"]
    name = by_key["name"]
    assert (name.left.value, name.right.value) == ("demo", "demo-stg")
    assert [v.text for v in name.right.variables] == ["COMPOSE_PROJECT_NAME=demo-stg (environments/stg.env:1)"]
    assert [s for s, _ in result.only_right] == ["worker"]  # the profile selects it in stg only
    assert "services.web.environment.STATE" not in by_key  # each instance's own folder counts as the same
    assert result.to_builtins()["only_in"]["stg"][0]["service"] == "worker"


def test_secrets_are_masked_but_nothing_else_is(tmp_path: Path) -> None:
    main_file = project(tmp_path, {"environments/stg.env": "API_TOKEN=tok-123456\nDB_PASSWORD=hunter22\n"})
    result = diff(main_file, "local", "stg", {"DB_PASSWORD": "hunter22"})
    text = json.dumps(result.to_builtins())
    assert "tok-123456" not in text
    by_key = {d.key: d for d in result.differences}
    assert by_key["services.web.environment.API_TOKEN"].right.value == "********"
    assert by_key["services.web.environment.API_TOKEN"].right.variables[0].text.startswith("API_TOKEN=********")
    # the password sits in a URL (masked) and in an unrelated value (left alone: that is not redaction's job here)
    assert "services.web.environment.DATABASE_URL" not in by_key  # the same password from the shell on both sides
    assert env_diff.redact("postgresql://app:hunter22@db/app", ("environment", "DATABASE_URL")) == (
        "postgresql://app:********@db/app"
    )
    assert env_diff.redact("a password is hunter22", ("environment", "NOTE")) == "a password is hunter22"
    assert env_diff.redact("keyboard", ("environment", "MONKEY_NAME")) == "********"


def test_a_missing_required_variable_is_a_note_not_a_failure(tmp_path: Path) -> None:
    main_file = project(tmp_path, {"environments/local.env": "DB_PASSWORD=hunter22\n", "environments/stg.env": ""})
    result = diff(main_file, "local", "stg")
    assert result.notes == {"stg": ["DB_PASSWORD: not set (required)"]}
    url = {d.key: d for d in result.differences}["services.web.environment.DATABASE_URL"]
    assert url.left.value == "postgresql://app:********@db/app"
    assert url.right.value == "postgresql://app:<DB_PASSWORD not set>@db/app"
    assert "DB_PASSWORD: not set (required)" in [v.text for v in url.right.variables]


def test_equal_environments_exit_0_and_different_ones_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main_file = project(
        tmp_path,
        {
            "environments/a.env": "DB_PASSWORD=x1234\n",
            "environments/b.env": "DB_PASSWORD=x1234\n",
            "compose.c.yaml": "",
        },
    )
    (tmp_path / "environments" / "c.env").write_text("DB_PASSWORD=x1234\nMODE=other\n")
    for name in ("DB_PASSWORD", "MODE", "PORT", "TAG", "API_TOKEN", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "diff", "a", "b"])
    assert done.value.code == 0
    assert "resolve to the same configuration" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "diff", "a", "c"])
    assert done.value.code == 1
    out = capsys.readouterr().out
    assert "environment.MODE" in out and "MODE=other (environments/c.env:2)" in out
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "diff", "a", "nope"])
    assert done.value.code == 2
    assert "known: local, a, b, c" in capsys.readouterr().err


# --- env check ------------------------------------------------------------------------------------------------


def test_check_names_each_missing_variable_once_with_all_its_uses(tmp_path: Path) -> None:
    main_file = project(
        tmp_path,
        {
            "compose.stg.yaml": "services:\n  web:\n    labels:\n      pw: ${DB_PASSWORD:?}\n      user: ${DB_USER}\n",
            "environments/stg.env": "PORT=8081\n",
        },
    )
    findings = env.check(env.load_environment(main_file, "stg", env={}))
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1
    (error,) = errors
    assert error.variable == "DB_PASSWORD"
    assert error.text == (
        "DB_PASSWORD is not set (required by compose.stg.yaml:4 services.web.labels.pw, "
        "compose.yaml:9 services.web.environment.DATABASE_URL): set DB_PASSWORD in environments/stg.env or your shell"
    )
    warnings = [f for f in findings if f.severity == "warning"]
    assert [w.variable for w in warnings] == ["DB_USER"]


def test_check_names_the_variable_that_makes_a_value_the_wrong_shape(tmp_path: Path) -> None:
    main_file = project(
        tmp_path,
        {
            "compose.yaml": COMPOSE + "    stop_grace_period: ${GRACE:-10s}\n",
            "environments/stg.env": "PORT=abc\nCOMPOSE_PROFILES=jobs\n",
        },
    )
    findings = env.check(env.load_environment(main_file, "stg", env={"GRACE": "soon", "DB_PASSWORD": "x"}))
    texts = [f.text for f in findings if f.severity == "error"]
    assert len(texts) == 2, texts
    assert texts[0].startswith("PORT=abc (environments/stg.env:1) makes compose.yaml:5 services.web.ports[0] wrong: ")
    assert texts[1].startswith("GRACE=soon (your shell) makes compose.yaml:17 services.worker.stop_grace_period wrong")


def test_check_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    main_file = project(tmp_path, {"environments/ok.env": "DB_PASSWORD=x\n", "environments/bad.env": ""})
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "check", "ok"])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "check", "--all"])
    assert done.value.code == 1
    out = capsys.readouterr().out
    assert "ok: ok" in out and "bad: 1 problem" in out and out.count("DB_PASSWORD is not set") == 2  # bad, local
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "check", "nope"])
    assert done.value.code == 2


# --- env new --------------------------------------------------------------------------------------------------

LOCAL_ENV = """
# Local development.
# The shell wins over this file.

# The only TCP port.
PORT=8000

# the database
DB_PASSWORD=hunter22
API_TOKEN=
"""


def test_new_keeps_the_structure_with_its_own_project_name_port_and_empty_secrets(tmp_path: Path) -> None:
    main_file = project(
        tmp_path,
        {
            "environments/local.env": LOCAL_ENV,
            "environments/stg.env": "COMPOSE_PROJECT_NAME=demo-stg\nPORT=8001\nDB_PASSWORD=x\n",
            "compose.local.yaml": "# dev mounts\nservices:\n  web:\n    volumes: [./src:/src]\n",
        },
    )
    free = {8002: False, 8003: True}
    plan = scaffold.plan(
        main_file, "qa", env.find_environment(main_file, "local"), port_free=lambda p: free.get(p, True)
    )
    assert plan.project_name == "demo-qa"
    assert (plan.port_variable, plan.port) == ("PORT", 8003)  # 8000, 8001 used by environments; 8002 busy here
    assert plan.required == ["DB_PASSWORD"]
    scaffold.write(plan)
    text = (tmp_path / "environments" / "qa.env").read_text()
    assert text.splitlines()[1:4] == ["# Local development.", "# The shell wins over this file.", ""]
    assert "COMPOSE_PROJECT_NAME=demo-qa\n" in text
    assert "# The only TCP port.\nPORT=8003\n" in text
    assert "# the database\n# required: set in your shell or secret store\nDB_PASSWORD=\nAPI_TOKEN=\n" in text
    assert "hunter22" not in text
    overlay = (tmp_path / "compose.qa.yaml").read_text()
    assert overlay.startswith("# The 'qa' environment's overlay") and overlay.endswith("volumes: [./src:/src]\n")
    loaded = env.load_environment(main_file, "qa", env={"DB_PASSWORD": "set"})
    assert loaded.checked().name == "demo-qa"
    assert env.entry_addresses(loaded) == ["http://127.0.0.1:8003"]


def test_new_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    main_file = project(tmp_path, {"environments/local.env": LOCAL_ENV, "compose.qa.yaml": "services: {}\n"})
    local = env.find_environment(main_file, "local")
    with pytest.raises(UsageError, match=r"compose.qa.yaml"):
        scaffold.plan(main_file, "qa", local, port_free=lambda p: True)
    for bad in ("QA", "-x", "a b", "override", ""):
        with pytest.raises(UsageError, match="not valid"):
            scaffold.plan(main_file, bad, local, port_free=lambda p: True)
    assert not (tmp_path / "environments" / "QA.env").exists()


def test_new_from_a_base_without_overlay_writes_a_commented_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main_file = project(tmp_path, {"environments/stg.env": "COMPOSE_PROJECT_NAME=demo-stg\nPORT=8001\n"})
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "new", "pre", "--from", "stg"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "created environments/pre.env" in out and "created compose.pre.yaml" in out
    assert "next: DB_PASSWORD=... unistack --env pre up --wait" in out
    assert "COMPOSE_PROJECT_NAME=demo-pre\n" in (tmp_path / "environments" / "pre.env").read_text()
    overlay = env.load_environment(main_file, "pre", env={"DB_PASSWORD": "x"})
    assert overlay.checked().name == "demo-pre"  # a comment-only overlay loads
    with pytest.raises(SystemExit) as done:
        main(["-f", str(main_file), "env", "new", "pre"])
    assert done.value.code == 2
    assert "environments/pre.env, compose.pre.yaml" in capsys.readouterr().err
