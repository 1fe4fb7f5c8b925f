"""``validate`` with fakes: the project from a small compose file, scripted ``ps`` rows, the application as an
``httpx.MockTransport`` and a fake WebSocket opener. No daemon, no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from unistack.config import load
from unistack.config.model import Project, replace
from unistack.engine.states import LastCheck, PublishedPort, Restart, ServiceRow
from unistack.errors import ConfigError
from unistack.ops import report
from unistack.ops.checks_http import lookup
from unistack.ops.isolation import listening
from unistack.ops.validate import Check, CheckResult, Context, blamed, exit_code, failed, plan, run_checks

NOW = 1_700_000_000.0

COMPOSE = """\
    name: shop
    x-unistack:
      validate:
        - {name: page, component: web, http: {path: /, expect_status: 200, expect_header: {content-type: text/html}}}
        - {name: assets, component: web, assets: {path: /, max_age: 3600}}
        - {name: database, component: db, http: {path: /api/ready, expect_json: {checks.database.ok: true}}}
        - {name: environment, component: api, http: {path: /api/info, expect_env: {environment: ENVIRONMENT}}}
        - name: no cors
          component: api
          http: {path: /api/x, origin: "https://evil.example", expect_no_header: [access-control-allow-origin]}
        - {name: live, component: api, websocket: {path: /api/ws}}
        - name: round trip
          component: api
          write: true
          http:
            - {method: POST, path: /api/notes, json: {title: t}, expect_status: 201, save: {id: id}}
            - {path: "/api/notes/{id}", expect_json: {title: t}}
            - {method: DELETE, path: "/api/notes/{id}", expect_status: 204, always: true}
        - {name: page in a browser, component: web, browser: {path: /, selector: "#count"}}
    services:
      db:
        image: postgres
        healthcheck: {test: ["CMD", "true"]}
      migrate:
        image: api
        restart: "no"
      api:
        image: api
        environment: {ENVIRONMENT: "${ENVIRONMENT:-local}"}
        healthcheck: {test: ["CMD", "true"]}
      proxy:
        image: caddy
        ports: ["127.0.0.1:8080:8080"]
    """


def project_from(tmp_path: Path, text: str = COMPOSE, **env: str) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    return load(cwd=tmp_path, env={"UNISTACK_STATE_DIR": str(tmp_path / "state"), **env})


def row(service: str, state: str = "healthy", **fields: Any) -> ServiceRow:
    values: dict[str, Any] = {
        "service": service,
        "state": state,
        "health": "healthy" if state == "healthy" else "none",
        "restarts": 0,
        "exit_code": None,
        "started_at": None,
        "last_check": LastCheck(at="2023-11-14T22:13:00Z", ok=True, exit_code=0, output="accepting connections"),
        "pid": None,
        "container": None,
        "ports": [],
        "reason": "",
        **fields,
    }
    return ServiceRow(**values)


def healthy_rows() -> list[ServiceRow]:
    return [
        row("db"),
        row("migrate", "exited", exit_code=0, last_check=None),
        row("api"),
        row("proxy", ports=[PublishedPort(host_ip="127.0.0.1", host_port=8080, target=8080, protocol="tcp")]),
    ]


Handler = Callable[[httpx.Request], httpx.Response]

PAGE = '<html><script src="/assets/index-abc123.js"></script><link href="/assets/index-def456.css"></html>'


def app(overrides: Mapping[str, Handler] | None = None, log: list[str] | None = None) -> httpx.MockTransport:
    """The application behind the proxy, healthy unless a path is overridden."""
    notes: dict[int, dict[str, Any]] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if log is not None:
            log.append(f"{request.method} {path}")
        if overrides and path in overrides:
            return overrides[path](request)
        if path == "/":
            return httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, text=PAGE)
        if path.startswith("/assets/"):
            encoding = "gzip" if "gzip" in request.headers.get("accept-encoding", "") else ""
            headers = {"cache-control": "public, max-age=31536000, immutable"}
            return httpx.Response(200, headers={**headers, **({"content-encoding": "gzip"} if encoding else {})})
        if path == "/api/ready":
            return httpx.Response(200, json={"status": "ready", "checks": {"database": {"ok": True, "detail": ""}}})
        if path == "/api/info":
            return httpx.Response(200, json={"environment": "local", "debug": False})
        if path == "/api/notes" and request.method == "POST":
            notes[7] = {"id": 7, **json.loads(request.content)}
            return httpx.Response(201, json=notes[7])
        if path == "/api/notes/7" and request.method == "GET":
            return httpx.Response(200, json=notes[7]) if 7 in notes else httpx.Response(404)
        if path == "/api/notes/7" and request.method == "DELETE":
            notes.pop(7, None)
            return httpx.Response(204)
        return httpx.Response(200, json={})

    return httpx.MockTransport(handle)


async def upgraded(url: str, headers: Mapping[str, str], timeout: float) -> str:
    assert url == "ws://127.0.0.1:8080/api/ws"
    assert headers["origin"] == "http://127.0.0.1:8080"
    return "upgraded (101)"


def context(project: Project, rows: list[ServiceRow] | None = None, **fields: Any) -> Context:
    values: dict[str, Any] = {
        "project": project,
        "running": project,
        "rows": healthy_rows() if rows is None else rows,
        "runtime_name": "docker",
        "now": NOW,
        "transport": app(),
        "ws_connect": upgraded,
        **fields,
    }
    return Context(**values)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def validate(ctx: Context) -> dict[str, CheckResult]:
    return by_name(await run_checks(plan(ctx), ctx.timeout))


# ----------------------------------------------------------------------------- verdicts


async def test_a_healthy_instance_passes_every_check(tmp_path: Path) -> None:
    results = await validate(context(project_from(tmp_path)))
    assert {r.verdict for name, r in results.items() if name != "page in a browser"} == {"pass"}, results
    assert results["page in a browser"].verdict == "skip"
    assert "--browser" in results["page in a browser"].detail
    assert results["migrate ready"].detail.startswith("exited 0")
    assert "accepting connections" in results["db ready"].detail  # the last health check is shown
    assert results["entry point answers"].component == "proxy"
    assert exit_code(list(results.values())) == 0


async def test_each_failure_blames_its_component(tmp_path: Path) -> None:
    not_ready = {"/api/ready": lambda r: httpx.Response(503, json={"checks": {"database": {"ok": False}}})}
    results = await validate(context(project_from(tmp_path), transport=app(not_ready)))
    assert results["database"].verdict == "fail"
    assert results["database"].component == "db"
    assert "checks.database.ok is 'false', expected 'true'" in results["database"].detail
    assert "unistack logs db" in results["database"].hint
    assert blamed(list(results.values())) == ["db"]


async def test_a_service_not_ready_fails_with_its_state_and_hint(tmp_path: Path) -> None:
    rows = [*healthy_rows()[:2], row("api", "stopped"), healthy_rows()[3]]
    rows[1] = row("migrate", "exited", exit_code=3, last_check=None)
    results = await validate(context(project_from(tmp_path), rows=rows))
    assert results["api ready"].verdict == "fail"
    assert "unistack start api" in results["api ready"].hint
    assert results["migrate ready"].verdict == "fail"
    assert "exited with code 3" in results["migrate ready"].detail


async def test_the_environment_is_compared_with_the_resolved_configuration(tmp_path: Path) -> None:
    results = await validate(context(project_from(tmp_path, ENVIRONMENT="staging")))
    assert results["environment"].verdict == "fail"
    assert "environment is 'local', the configuration gives 'staging' (ENVIRONMENT)" in results["environment"].detail
    assert "unistack up" in results["environment"].hint


async def test_a_refused_connection_blames_the_entry_service(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    results = await validate(context(project_from(tmp_path), transport=httpx.MockTransport(refuse)))
    assert results["database"].component == "proxy"
    assert results["entry point answers"].verdict == "fail"
    assert set(blamed(list(results.values()))) == {"proxy"}


async def test_a_cross_origin_grant_fails(tmp_path: Path) -> None:
    grant = {"/api/x": lambda r: httpx.Response(200, headers={"access-control-allow-origin": "*"})}
    results = await validate(context(project_from(tmp_path), transport=app(grant)))
    assert results["no cors"].verdict == "fail"
    assert "access-control-allow-origin: '*' should not be sent" in results["no cors"].detail


async def test_assets_need_long_caching_and_compression_and_skip_without_hashed_files(tmp_path: Path) -> None:
    short = {"/assets/index-abc123.js": lambda r: httpx.Response(200, headers={"cache-control": "max-age=60"})}
    results = await validate(context(project_from(tmp_path), transport=app(short)))
    assert results["assets"].verdict == "fail"
    assert "max-age>=3600" in results["assets"].detail and "Content-Encoding" in results["assets"].detail
    dev = {"/": lambda r: httpx.Response(200, text='<script type="module" src="/src/main.ts"></script>')}
    results = await validate(context(project_from(tmp_path), transport=app(dev)))
    assert results["assets"].verdict == "skip"
    assert "no hashed assets" in results["assets"].detail


async def test_the_round_trip_always_cleans_up_after_a_failure(tmp_path: Path) -> None:
    log: list[str] = []
    wrong = {"/api/notes/7": lambda r: httpx.Response(500) if r.method == "GET" else httpx.Response(204)}
    results = await validate(context(project_from(tmp_path), transport=app(wrong, log)))
    assert results["round trip"].verdict == "fail"
    assert "GET /api/notes/7 -> 500" in results["round trip"].detail
    assert "DELETE /api/notes/7" in log  # the clean-up step ran


async def test_write_checks_are_skipped_in_production_unless_asked(tmp_path: Path) -> None:
    production = replace(project_from(tmp_path), environment="production")
    log: list[str] = []
    results = await validate(context(production, transport=app(log=log)))
    assert results["round trip"].verdict == "skip"
    assert "--write" in results["round trip"].detail
    assert not [line for line in log if line.startswith("POST")]
    results = await validate(context(production, write=True))
    assert results["round trip"].verdict == "pass"


async def test_a_recent_restart_is_flapping_even_when_healthy(tmp_path: Path) -> None:
    def restarted(seconds_ago: float) -> list[ServiceRow]:
        at = datetime.fromtimestamp(NOW - seconds_ago, UTC).isoformat().replace("+00:00", "Z")
        rows = healthy_rows()
        rows[2] = row("api", restarts=1, restarted_at=[at])
        return rows

    results = await validate(context(project_from(tmp_path), rows=restarted(60), flapping_window=300))
    assert results["api not flapping"].verdict == "fail"
    assert "restarted 1 time(s) in the last 300s" in results["api not flapping"].detail
    assert results["api ready"].verdict == "pass"
    results = await validate(context(project_from(tmp_path), rows=restarted(600), flapping_window=300))
    assert results["api not flapping"].verdict == "pass"


async def test_only_the_supervisors_restarts_are_flapping(tmp_path: Path) -> None:
    at = datetime.fromtimestamp(NOW - 60, UTC).isoformat().replace("+00:00", "Z")

    def restarted(*causes: str) -> list[ServiceRow]:
        rows = healthy_rows()
        unplanned = [at for cause in causes if cause in ("exited", "unhealthy")]
        recent = [Restart(at=at, cause=cause) for cause in causes]  # type: ignore[arg-type]
        rows[2] = row("api", restarts=len(unplanned), restarted_at=unplanned, restarts_recent=recent)
        return rows

    results = await validate(context(project_from(tmp_path), rows=restarted("requested", "update")))
    assert results["api not flapping"].verdict == "pass"
    assert "2 planned (requested, update)" in results["api not flapping"].detail
    results = await validate(context(project_from(tmp_path), rows=restarted("requested", "exited")))
    assert results["api not flapping"].verdict == "fail"
    assert "restarted 1 time(s) in the last 300s" in results["api not flapping"].detail


async def test_drift_names_the_services_whose_configuration_changed(tmp_path: Path) -> None:
    running = project_from(tmp_path)
    now = project_from(tmp_path, ENVIRONMENT="staging")
    results = await validate(context(now, running=running))
    drift = results["configuration unchanged"]
    assert drift.verdict == "fail"
    assert "started from an older configuration" in drift.detail
    assert "api (environment.ENVIRONMENT" in drift.detail
    assert "unistack up" in drift.hint
    results = await validate(context(now, running=None))
    assert results["configuration unchanged"].verdict == "skip"


async def test_selected_services_limit_the_checks(tmp_path: Path) -> None:
    results = await validate(context(project_from(tmp_path), selected=["db"]))
    assert set(results) == {"db ready", "db not flapping", "configuration unchanged", "database"}


async def test_several_published_services_need_the_entry_named(tmp_path: Path) -> None:
    rows = healthy_rows()
    rows[0] = row("db", ports=[PublishedPort(host_ip="", host_port=5432, target=5432, protocol="tcp")])
    results = await validate(context(project_from(tmp_path), rows=rows))
    assert results["page"].verdict == "fail"
    assert "name the entry with service:" in results["page"].detail


async def test_a_check_that_hangs_is_cut_at_its_timeout() -> None:
    async def hang() -> Any:
        await asyncio.sleep(3600)

    async def boom() -> Any:
        raise RuntimeError("bug")

    results = await run_checks([Check("slow", "api", hang, timeout=0.01), Check("buggy", "api", boom)], 1.0)
    assert results[0].verdict == "fail" and "no verdict within 0.01s" in results[0].detail
    assert results[1].verdict == "fail" and "RuntimeError: bug" in results[1].detail


# ----------------------------------------------------------------------------- output


def sample() -> list[CheckResult]:
    return [
        CheckResult(name="db ready", component="db", verdict="pass", duration=0.001, detail="healthy"),
        CheckResult(name="api ready", component="api", verdict="fail", duration=0.5, detail="stopped", hint="start"),
        CheckResult(name="database", component="db", verdict="skip", duration=0.0, detail="not asked"),
    ]


def test_text_groups_by_component_and_explains_failures() -> None:
    out = report.text(sample())
    lines = out.splitlines()
    assert lines[0].split() == ["COMPONENT", "CHECK", "RESULT", "TIME", "DETAIL"]
    assert lines[1].startswith("db ") and lines[2].startswith(" ") and "database" in lines[2]  # grouped
    assert lines[3].startswith("api ")
    assert "api / api ready: stopped" in out and "next: start" in out
    assert out.endswith("1 passed, 1 failed, 1 skipped")


def test_json_is_a_list_of_typed_records() -> None:
    data = json.loads(report.to_json(sample()))
    assert [set(item) for item in data] == [{"name", "component", "verdict", "duration", "detail", "hint"}] * 3
    assert report.from_json(report.to_json(sample())) == sample()


def test_junit_has_a_suite_per_component_and_failure_and_skipped_elements() -> None:
    root = ET.fromstring(report.junit(sample(), "shop"))
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert set(suites) == {"db", "api"}
    assert suites["db"].get("skipped") == "1"
    (failure,) = suites["api"].iter("failure")
    assert failure.get("message") == "stopped" and "next: start" in (failure.text or "")
    cases = [case.get("classname") for case in root.iter("testcase")]
    assert cases == ["shop.db", "shop.db", "shop.api"]


# ----------------------------------------------------------------------------- pieces


def test_lookup_walks_dotted_paths() -> None:
    data = {"checks": {"database": {"ok": True}}, "items": [{"id": 3}]}
    assert lookup(data, "checks.database.ok") == (True, True)
    assert lookup(data, "items.0.id") == (True, 3)
    assert lookup(data, "checks.cache") == (False, None)


def test_listening_reads_proc_net_tcp_without_loopback() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000  999 0 1\n"  # *:5432
        "   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  999 0 2\n"  # 127.0.0.1:3306
        "   2: 0200A8C0:1F90 0300A8C0:D431 01 00000000:00000000 00:00000000 00000000  999 0 3\n"  # established
    )
    assert listening(table) == {5432}


def test_failed_outcome_keeps_its_component_override() -> None:
    assert failed("x", "y", "proxy").component == "proxy"


# ----------------------------------------------------------------------------- the file form


def problems_of(tmp_path: Path, checks: str) -> list[str]:
    text = "services:\n  web:\n    image: nginx\nx-unistack:\n  validate:\n" + textwrap.indent(checks, "    ")
    (tmp_path / "compose.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(cwd=tmp_path, env={})
    return [str(problem) for problem in caught.value.problems]


def test_bad_validate_entries_are_refused_with_file_and_line(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        textwrap.dedent("""\
            - {name: a, component: web, http: {path: /, expect_stauts: 200}}
            - {name: b, component: web, http: {path: /}, websocket: {path: /ws}}
            - {name: c, component: web, htp: {path: /}}
            - {name: d, component: web, http: {path: api, method: FETCH, expect_status: 999}}
            - {component: web, assets: {max_age: soon}}
            - {name: f, component: web, command: [true]}
            """),
    )
    compose = str(tmp_path / "compose.yaml")
    text = "\n".join(problems)
    assert f"{compose}:6 (x-unistack.validate[0].http.expect_stauts): unknown request key 'expect_stauts'" in text
    assert "use always, expect_env, expect_header" in text  # the known keys are listed
    assert f"{compose}:7 (x-unistack.validate[1]): a check needs exactly one of http, websocket" in text
    assert "unknown check key 'htp'" in text and "use assets, browser, command, component, http, name" in text
    assert "path 'api' must start with /" in text
    assert "method 'FETCH' is not one of" in text
    assert "999 is not an HTTP status" in text
    assert "validate[4].name): name is required" in text
    assert "'soon' is not a number of seconds" in text
    assert "a command check needs service:" in text


def test_validate_must_be_a_list(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\nx-unistack:\n  validate: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"compose.yaml:5 \(x-unistack.validate\): x-unistack.validate must be"):
        load(cwd=tmp_path, env={})


def test_the_stack_declares_its_checks() -> None:
    stack = Path(__file__).resolve().parents[2] / "stack" / "compose.yaml"
    project = load([stack], env={"UNISTACK_STATE_DIR": "/nonexistent"})
    kinds = {check.kind for check in project.validate}
    assert kinds == {"http", "assets", "websocket", "browser"}
    assert [c.name for c in project.validate if c.write] == ["note round trip"]
