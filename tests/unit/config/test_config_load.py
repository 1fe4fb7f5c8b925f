"""The loader end to end: discovery, env files, overlays, project names, unistack's variables, the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack.config import check_for_process_runtime, load
from unistack.config.model import to_data
from unistack.errors import ConfigError

Write = Callable[..., Path]  # the `write` fixture (conftest.py)

SIMPLE = """
services:
  web:
    image: nginx
"""


def _problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


# --- discovery -----------------------------------------------------------------------------------------


def test_finds_the_nearest_compose_file_upward_and_its_override(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", SIMPLE)
    write("compose.override.yaml", "services:\n  web:\n    image: caddy\n")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    project = load(cwd=tmp_path / "sub" / "deeper", env={})
    assert project.working_dir == tmp_path
    assert project.files == (tmp_path / "compose.yaml", tmp_path / "compose.override.yaml")
    assert project.services["web"].spec["image"] == "caddy"


def test_the_state_folder_is_reported_before_the_rest_is_checked(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx\n    depend_on: [db]\n")
    seen: list[Path] = []
    with pytest.raises(ConfigError):  # the unknown key is found after the state folder is known
        load(cwd=tmp_path, env={}, project_name="demo", on_state_dir=seen.append)
    assert seen == [tmp_path / ".unistack" / "demo"]
    assert not (tmp_path / ".unistack").exists()


def test_docker_compose_yml_is_found_too(write: Write, tmp_path: Path) -> None:
    write("docker-compose.yml", SIMPLE)
    assert load(cwd=tmp_path, env={}).services["web"].name == "web"


def test_no_compose_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    assert "-f FILE" in str(raised.value)


def test_explicit_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(["nope.yaml"], cwd=tmp_path, env={})
    assert str(tmp_path / "nope.yaml") in str(raised.value)


def test_yaml_syntax_error_names_file_and_line(write: Write, tmp_path: Path) -> None:
    path = write("compose.yaml", "services:\n  web:\n    image: [unclosed\n    ports: x\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    problem = raised.value.problems[0]
    assert problem.file == path
    assert problem.line is not None and problem.line >= 3
    assert "invalid YAML" in problem.message


def test_duplicate_keys_are_an_error(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: a\n    image: b\n")
    with pytest.raises(ConfigError, match=r"compose\.yaml:4"):
        load(cwd=tmp_path, env={})


def test_yaml_1_2_keeps_strings(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    environment:\n      TIME: 22:22\n      FLAG: on\n      YES: yes\n",
    )
    environment = load(cwd=tmp_path, env={}).services["web"].environment
    assert environment == {"TIME": "22:22", "FLAG": "on", "YES": "yes"}


# --- variables -----------------------------------------------------------------------------------------


def test_all_missing_variables_are_listed_at_once_across_files(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: ${IMAGE:?set the image}\n    user: ${USER_ID:?}\n")
    write("compose.override.yaml", "services:\n  web:\n    environment:\n      TOKEN: ${TOKEN?needed}\n")
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={})
    problems = raised.value.problems
    assert [(p.file.name if p.file else None, p.line, p.key) for p in problems] == [
        ("compose.yaml", 3, "services.web.image"),
        ("compose.yaml", 4, "services.web.user"),
        ("compose.override.yaml", 4, "services.web.environment.TOKEN"),
    ]
    assert "set the image" in problems[0].message


def test_os_environment_wins_over_dot_env(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: ${IMAGE}:${TAG}\n")
    write(".env", "IMAGE=from-dotenv\nTAG=1\n")
    assert load(cwd=tmp_path, env={"IMAGE": "from-os"}).services["web"].spec["image"] == "from-os:1"


def test_env_files_replace_dot_env(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: ${IMAGE:-none}:${TAG:-none}\n")
    write(".env", "IMAGE=from-dotenv\n")
    write("other.env", "TAG=2\n")
    project = load(cwd=tmp_path, env={}, env_files=["other.env"])
    assert project.services["web"].spec["image"] == "none:2"


def test_unistack_variables(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        name: demo
        services:
          web:
            image: x
            environment:
              P: ${UNISTACK_PROJECT}
              E: ${UNISTACK_ENV}
              S: ${UNISTACK_STATE_DIR}
              R: ${UNISTACK_RUN_DIR}
              V: ${UNISTACK_VOLUMES_DIR}
        """,
    )
    write(".env", "UNISTACK_ENV=ignored\n")
    project = load(cwd=tmp_path, env={"UNISTACK_PROJECT": "ignored"})
    state = tmp_path / ".unistack" / "demo"
    assert project.state_dir == state
    assert project.services["web"].environment == {
        "P": "demo",
        "E": "local",
        "S": str(state),
        "R": str(state / "run"),
        "V": str(state / "volumes"),
    }


def test_state_dir_from_the_environment_names_the_parent(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "name: demo\nservices:\n  web:\n    image: ${UNISTACK_STATE_DIR}\n")
    project = load(cwd=tmp_path, env={"UNISTACK_STATE_DIR": str(tmp_path / "state")})
    assert project.state_dir == tmp_path / "state" / "demo"
    assert project.services["web"].spec["image"] == str(tmp_path / "state" / "demo")


def test_explicit_run_dir_is_kept(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: ${UNISTACK_RUN_DIR}\n")
    assert load(cwd=tmp_path, env={"UNISTACK_RUN_DIR": "/r"}).services["web"].spec["image"] == "/r"


# --- environments (--env NAME) -------------------------------------------------------------------------


def test_env_name_loads_env_file_and_overlay(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: app:${TAG:-dev}\n    ports: ['8080:80']\n")
    write(".env", "TAG=fromdotenv\nOTHER=1\n")
    write("environments/staging.env", "TAG=staging\n")
    write("compose.staging.yaml", "services:\n  web:\n    ports: !override ['9090:80']\n")
    project = load(cwd=tmp_path, env={}, env_name="staging")
    assert project.environment == "staging"
    assert project.files[-1] == tmp_path / "compose.staging.yaml"
    web = project.services["web"]
    assert web.spec["image"] == "app:staging"
    assert [p.published for p in web.ports] == [9090]
    assert project.variables["OTHER"] == "1"


def test_env_name_from_unistack_env(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", SIMPLE)
    write("environments/production.env", "A=1\n")
    assert load(cwd=tmp_path, env={"UNISTACK_ENV": "production"}).environment == "production"


def test_unknown_env_name_names_both_paths(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", SIMPLE)
    with pytest.raises(ConfigError) as raised:
        load(cwd=tmp_path, env={}, env_name="stagign")
    text = str(raised.value)
    assert str(tmp_path / "environments" / "stagign.env") in text
    assert str(tmp_path / "compose.stagign.yaml") in text


def test_default_env_needs_no_files(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", SIMPLE)
    assert load(cwd=tmp_path, env={}).environment == "local"


# --- project names -------------------------------------------------------------------------------------


def test_project_name_precedence(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "name: ${STACK:-fromfile}\nservices:\n  web:\n    image: x\n")
    assert load(cwd=tmp_path, env={}).name == "fromfile"
    assert load(cwd=tmp_path, env={"STACK": "interp"}).name == "interp"
    assert load(cwd=tmp_path, env={"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert load(cwd=tmp_path, env={"COMPOSE_PROJECT_NAME": "fromenv"}, project_name="flag").name == "flag"


def test_project_name_from_folder_is_normalised(tmp_path: Path) -> None:
    folder = tmp_path / "My App.v2"
    folder.mkdir()
    (folder / "compose.yaml").write_text(SIMPLE)
    assert load(cwd=folder, env={}).name == "myappv2"


@pytest.mark.parametrize("name", ["Bad", "-x", "a b", ""])
def test_invalid_project_name_is_an_error(write: Write, tmp_path: Path, name: str) -> None:
    write("compose.yaml", SIMPLE)
    with pytest.raises(ConfigError, match="project name"):
        load(cwd=tmp_path, env={}, project_name=name)


# --- the model -----------------------------------------------------------------------------------------


def test_model_from_long_and_short_syntax(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          db:
            image: postgres
            healthcheck:
              test: ["CMD", "pg_isready"]
              interval: 1m30s
              timeout: 100ms
              retries: 5
              start_period: 10s
            stop_grace_period: 1m
            stop_signal: SIGINT
          web:
            image: web
            depends_on:
              db:
                condition: service_healthy
                restart: true
            ports: ["127.0.0.1:8080:80"]
            restart: on-failure:4
            profiles: []
          worker:
            image: w
            depends_on: [db, web]
            healthcheck:
              disable: true
            deploy:
              restart_policy: {condition: any, max_attempts: 2, delay: 5s, window: 2m}
        """,
    )
    project = load(cwd=tmp_path, env={})
    db, web, worker = project.services["db"], project.services["web"], project.services["worker"]
    assert db.healthcheck is not None
    assert (db.healthcheck.kind, db.healthcheck.test) == ("CMD", ("pg_isready",))
    assert (db.healthcheck.interval, db.healthcheck.timeout, db.healthcheck.retries) == (90.0, 0.1, 5)
    assert (db.stop_grace_period, db.stop_signal) == (60.0, "SIGINT")
    assert web.depends_on["db"].condition == "service_healthy" and web.depends_on["db"].restart
    assert (web.restart.mode, web.restart.max_attempts) == ("on-failure", 4)
    assert to_data(web.ports[0]) == {"host_ip": "127.0.0.1", "published": 8080, "target": 80, "protocol": "tcp"}
    assert set(worker.depends_on) == {"db", "web"} and worker.depends_on["db"].condition == "service_started"
    assert worker.healthcheck is None
    assert to_data(worker.restart) == {
        "mode": "always",
        "max_attempts": 2,
        "backoff_initial": 5.0,
        "backoff_max": 30.0,
        "reset_after": 120.0,
    }


def test_x_unistack_process_restart_and_notify(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          api:
            image: api
            environment: {A: "1", B: "service"}
            restart: on-failure:7
            x-unistack:
              process:
                command: uvicorn app:app --port 8000
                working_dir: ./backend
                environment: [B=process, C=3]
              restart: {backoff_initial: 2s, backoff_max: 1m, reset_after: 5m}
          raw:
            image: raw
            x-unistack:
              process:
                command: ["python", "-m", "http.server", 8000]
          none:
            image: none
        x-unistack:
          notify:
            - command: ["sh", "-c", "cat >> alerts.jsonl"]
            - command: "cat > last.json"
              timeout: 3s
            - webhook: https://hooks.example.com/x
        """,
    )
    project = load(cwd=tmp_path, env={})
    api = project.services["api"]
    assert api.process is not None
    assert api.process.command == ("/bin/sh", "-c", "uvicorn app:app --port 8000")
    assert api.process.working_dir == tmp_path / "backend"
    assert api.process.environment == {"A": "1", "B": "process", "C": "3"}
    assert api.environment == {"A": "1", "B": "service"}
    assert to_data(api.restart) == {
        "mode": "on-failure",
        "max_attempts": 7,
        "backoff_initial": 2.0,
        "backoff_max": 60.0,
        "reset_after": 300.0,
    }
    raw = project.services["raw"]
    assert raw.process is not None
    assert raw.process.command == ("python", "-m", "http.server", "8000")
    assert raw.process.working_dir == tmp_path
    assert project.services["none"].process is None
    assert [(n.command, n.webhook, n.timeout) for n in project.notify] == [
        (("sh", "-c", "cat >> alerts.jsonl"), None, 10.0),
        (("/bin/sh", "-c", "cat > last.json"), None, 3.0),
        (None, "https://hooks.example.com/x", 10.0),
    ]
    problems = check_for_process_runtime(project)
    assert len(problems) == 1 and "'none'" in problems[0].message and problems[0].fix


def test_max_attempts_from_x_unistack_wins_over_on_failure(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n  a:\n    image: a\n    restart: on-failure:2\n    x-unistack:\n      restart: {max_attempts: 9}\n",
    )
    assert load(cwd=tmp_path, env={}).services["a"].restart.max_attempts == 9


def test_service_env_file_is_read_and_environment_wins(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  a:\n    image: a\n    env_file: a.env\n    environment: {B: env}\n")
    write("a.env", "A=file\nB=file\n")
    assert load(cwd=tmp_path, env={}).services["a"].environment == {"A": "file", "B": "env"}


def test_environment_bare_key_comes_from_variables(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services:\n  a:\n    image: a\n    environment: [FROM_OS, FROM_DOTENV, UNSET]\n")
    write(".env", "FROM_DOTENV=d\n")
    environment = load(cwd=tmp_path, env={"FROM_OS": "o"}).services["a"].environment
    assert environment == {"FROM_OS": "o", "FROM_DOTENV": "d"}


def test_the_model_is_immutable(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", SIMPLE)
    project = load(cwd=tmp_path, env={})
    with pytest.raises(AttributeError, match="immutable"):
        project.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        project.services["web"].ports = ()  # type: ignore[misc]


def test_container_isolation_is_refused_for_host_processes_not_dropped(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        "services:\n"
        "  plain:\n    user: ''\n    read_only: false\n    x-unistack: {process: {command: [x]}}\n"
        "  hardened:\n    user: '10001'\n    cap_drop: [ALL]\n    read_only: true\n"
        "    deploy: {resources: {limits: {memory: 64m}}}\n    x-unistack: {process: {command: [x]}}\n",
    )
    problems = check_for_process_runtime(load(cwd=tmp_path, env={}))
    assert [p.key for p in problems] == ["services.hardened.user"]
    assert "user, cap_drop, read_only, deploy.resources" in problems[0].message
    assert problems[0].fix and "--runtime docker" in problems[0].fix
