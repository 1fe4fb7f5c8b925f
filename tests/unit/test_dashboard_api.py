"""The dashboard's HTTP API against a fake instance (``Sources``): the token (query, cookie, header), the Origin
check on POST, the JSON endpoints, the actions, one validate at a time, and the SSE streams (services sent on a
change and only then, events, the daemon going away and coming back, log lines in batches). Also the pure views:
the blocking edge and its reason, the entry address, the restart history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from unistack.dashboard import views
from unistack.dashboard.records import CheckRecord, EventRecord, LogRecord, Stats, ValidateReport
from unistack.dashboard.server import Dashboard
from unistack.dashboard.sources import ActionRefused, DaemonAway, validate_report
from unistack.engine.states import PublishedPort, ServiceRow

TOKEN = "t0ken-for-tests"


def row(name: str, state: str = "healthy", reason: str = "", **kw: Any) -> ServiceRow:
    health = {"healthy": "healthy", "starting": "starting"}.get(state, "none")
    return ServiceRow(
        service=name,
        state=state,  # type: ignore[arg-type]
        health=health,  # type: ignore[arg-type]
        restarts=0,
        exit_code=None,
        started_at="2026-12-07T20:00:00.000Z",
        last_check=None,
        pid=None,
        container=None,
        ports=kw.pop("ports", []),
        reason=reason,
        **kw,
    )


class FakeSources:
    """An instance of db <- backend <- proxy whose rows, events and log lines the test sets."""

    project = "demo"
    runtime = "process"
    environment = "local"

    def __init__(self) -> None:
        self.needs = {"db": {}, "backend": {"db": "service_healthy"}, "proxy": {"backend": "service_started"}}
        port = PublishedPort(host_ip="0.0.0.0", host_port=8080, target=80, protocol="tcp")
        self.current = [row("db"), row("backend"), row("proxy", "running", ports=[port])]
        self.away = False
        self.ps_calls = 0
        self.acted: list[tuple[str, str]] = []
        self.refuse: ActionRefused | None = None
        self.past = [event("exited", "backend", exit_code=137), event("restarting", "backend"), event("exited", "db")]
        self.new_events: asyncio.Queue[EventRecord] = asyncio.Queue()
        self.log_lines: asyncio.Queue[LogRecord] = asyncio.Queue()
        self.log_request: tuple[list[str], int] | None = None
        self.validate_gate = asyncio.Event()
        self.validate_gate.set()
        self.report: ValidateReport | None = None

    async def rows(self) -> list[ServiceRow]:
        self.ps_calls += 1
        if self.away:
            raise DaemonAway("no supervisor daemon answers for demo")
        return list(self.current)

    def daemon_pid(self) -> int | None:
        return None if self.away else 4242

    async def stats(self, rows: Sequence[ServiceRow]) -> dict[str, Stats]:
        return {r.service: Stats(cpu_percent=1.5, memory_bytes=1024) for r in rows}

    def events(self, limit: int) -> list[EventRecord]:
        return self.past[-limit:]

    async def follow_events(self) -> AsyncIterator[EventRecord]:
        while True:
            yield await self.new_events.get()

    async def follow_logs(self, services: Sequence[str], tail: int) -> AsyncIterator[LogRecord]:
        self.log_request = (list(services), tail)
        while True:
            yield await self.log_lines.get()

    async def act(self, verb: str, service: str) -> list[ServiceRow]:
        if self.refuse is not None:
            raise self.refuse
        self.acted.append((verb, service))
        return list(self.current)

    async def validate(self) -> ValidateReport:
        await self.validate_gate.wait()
        if self.report is not None:
            return self.report
        check = CheckRecord(
            name="entry point answers", component="proxy", ok=True, verdict="pass", message="", duration_s=0.01
        )
        return ValidateReport(ok=True, checks=[check], finished_at="2026-12-07T20:00:01.000Z")


def event(kind: str, service: str, **data: Any) -> EventRecord:
    return EventRecord(
        kind=kind, service=service, message=f"{service} {kind}", at="2026-12-07T20:00:00.500Z", data=data
    )


@pytest.fixture
def static(tmp_path: Path) -> Path:
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>dashboard</title>")
    (folder / "app.js").write_text("console.log(1)")
    return folder


@pytest.fixture
def fake() -> FakeSources:
    return FakeSources()


@pytest.fixture
async def client(fake: FakeSources, static: Path) -> AsyncIterator[TestClient[Any, Any]]:
    board = Dashboard(fake, token=TOKEN, static=static)  # type: ignore[arg-type]
    board.live.poll = 0.02
    server = TestServer(board.app(), host="127.0.0.1")
    async with TestClient(server) as test_client:
        board.port = server.port
        yield test_client


def origin(client: TestClient[Any, Any]) -> str:
    return f"http://127.0.0.1:{client.port}"


async def test_no_or_a_wrong_token_is_401(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/static/app.js", "/api/services", "/api/stream", "/api/logs/stream", "/api/events"):
        response = await client.get(path)
        assert response.status == 401, path
        assert "token" in await response.text()
    assert (await client.get("/api/services", params={"token": TOKEN + "x"})).status == 401
    assert (await client.post("/api/services/db/restart", headers={"Origin": origin(client)})).status == 401


async def test_the_page_sets_the_cookie_and_the_cookie_is_enough(client: TestClient[Any, Any]) -> None:
    page = await client.get("/", params={"token": TOKEN})
    assert page.status == 200
    assert "dashboard" in await page.text()
    cookie = page.cookies["unistack_dashboard"]
    assert cookie.value == TOKEN
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert (await client.get("/static/app.js")).status == 200  # the cookie jar sends it now
    assert (await client.get("/api/services")).status == 200


async def test_a_post_needs_its_own_origin_or_the_token_header(client: TestClient[Any, Any], fake: FakeSources) -> None:
    q = {"token": TOKEN}
    foreign = await client.post("/api/services/db/restart", params=q, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403
    other_port = await client.post("/api/services/db/restart", params=q, headers={"Origin": "http://127.0.0.1:1"})
    assert other_port.status == 403
    assert (await client.post("/api/services/db/restart", params=q)).status == 403  # no Origin, token in the URL
    assert fake.acted == []
    scripted = await client.post("/api/services/db/restart", headers={"X-Unistack-Token": TOKEN})
    assert scripted.status == 200
    same = await client.post("/api/services/backend/stop", params=q, headers={"Origin": origin(client)})
    assert same.status == 200
    body = await same.json()
    assert body["ok"] is True and [r["service"] for r in body["services"]] == ["db", "backend", "proxy"]
    assert fake.acted == [("restart", "db"), ("stop", "backend")]
    assert (await client.get("/api/services/db/restart", params=q)).status in (404, 405)  # a GET never acts


async def test_unknown_services_and_actions_are_404_and_a_refusal_keeps_its_status(
    client: TestClient[Any, Any], fake: FakeSources
) -> None:
    q, h = {"token": TOKEN}, {"Origin": origin(client)}
    missing = await client.get("/api/services/nope", params=q)
    assert missing.status == 404
    assert "db, backend, proxy" in (await missing.json())["error"]
    assert (await client.post("/api/services/nope/restart", params=q, headers=h)).status == 404
    assert (await client.post("/api/services/db/explode", params=q, headers=h)).status == 404
    fake.refuse = ActionRefused("another unistack command is changing this instance", 409)
    refused = await client.post("/api/services/db/restart", params=q, headers=h)
    assert refused.status == 409
    assert await refused.json() == {"ok": False, "error": "another unistack command is changing this instance"}


async def test_instance_services_and_events(client: TestClient[Any, Any], fake: FakeSources) -> None:
    q = {"token": TOKEN}
    info = await (await client.get("/api/instance", params=q)).json()
    assert info == {
        "project": "demo",
        "runtime": "process",
        "environment": "local",
        "entry": "http://127.0.0.1:8080/",
        "daemon": {"pid": 4242, "connected": True},
    }
    one = await (await client.get("/api/services/backend", params=q)).json()
    assert one["depends_on"] == {"db": "service_healthy"}
    assert one["stats"] == {"cpu_percent": 1.5, "memory_bytes": 1024}
    assert one["restart_history"] == [{"at": "2026-12-07T20:00:00.500Z", "exit_code": 137}]
    assert one["uptime_s"] > 0 and one["entry"] is None
    services = await (await client.get("/api/services", params=q)).json()
    assert services["services"][0]["restart_history"] == []  # db's exit was never followed by a restart
    assert {(e["from"], e["to"], e["blocking"]) for e in services["edges"]} == {
        ("backend", "db", False),
        ("proxy", "backend", False),
    }
    events = await (await client.get("/api/events", params={**q, "limit": "5"})).json()
    assert [e["kind"] for e in events["events"]] == ["exited", "restarting", "exited"]
    assert (await client.get("/api/events", params={**q, "limit": "many"})).status == 400
    fake.away = True
    assert (await client.get("/api/services", params=q)).status == 503
    assert (await (await client.get("/api/instance", params=q)).json())["daemon"] == {"pid": None, "connected": False}


async def test_one_validate_at_a_time(client: TestClient[Any, Any], fake: FakeSources) -> None:
    q, h = {"token": TOKEN}, {"Origin": origin(client)}
    assert await (await client.get("/api/validate", params=q)).json() is None
    fake.validate_gate.clear()
    first = asyncio.create_task(client.post("/api/validate", params=q, headers=h))
    for _ in range(200):  # until the first one is running
        if fake.validate_gate.is_set() or first.done():
            break
        await asyncio.sleep(0.01)
        second = await client.post("/api/validate", params=q, headers=h)
        if second.status == 409:
            break
    assert second.status == 409
    fake.validate_gate.set()
    report = await (await first).json()
    assert report["ok"] is True and report["checks"][0]["name"] == "entry point answers"
    assert (await (await client.get("/api/validate", params=q)).json()) == report


class Stream:
    """An SSE response read event by event."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.buffer = b""

    async def next(self, timeout: float = 10.0) -> tuple[str, Any]:
        async with asyncio.timeout(timeout):
            while b"\n\n" not in self.buffer:
                chunk = await self.response.content.readany()
                assert chunk, "the stream ended"
                self.buffer += chunk
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        fields = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line)
        if "event" not in fields:
            return ("", None)  # retry: or a ping
        return fields["event"], json.loads(fields["data"])

    async def next_named(self, name: str, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                kind, data = await self.next(timeout)
                if kind == name:
                    return data


async def test_the_stream_sends_services_on_change_events_and_the_daemon(
    client: TestClient[Any, Any], fake: FakeSources
) -> None:
    response = await client.get("/api/stream", params={"token": TOKEN})
    assert response.headers["Content-Type"] == "text/event-stream"
    stream = Stream(response)
    assert await stream.next_named("daemon") == {"pid": 4242, "connected": True}
    first = await stream.next_named("services")
    assert [r["state"] for r in first["services"]] == ["healthy", "healthy", "running"]
    polls = fake.ps_calls
    fake.current[1] = row("backend", "created")
    fake.current[0] = row("db", "starting")
    changed = await stream.next_named("services")
    assert fake.ps_calls > polls
    assert [r["state"] for r in changed["services"]][:2] == ["starting", "created"]
    blocking = [e for e in changed["edges"] if e["blocking"]]
    assert blocking == [
        {
            "from": "backend",
            "to": "db",
            "condition": "service_healthy",
            "blocking": True,
            "reason": "waits until db is healthy (db is starting)",
        }
    ]
    await fake.new_events.put(event("exited", "proxy", exit_code=1))
    got = await stream.next_named("event")
    assert got["kind"] == "exited" and got["service"] == "proxy"
    await fake.new_events.put(event("starting", "proxy"))
    assert (await stream.next_named("event"))["kind"] == "starting"
    fake.away = True
    assert await stream.next_named("daemon") == {"pid": None, "connected": False}
    fake.away = False
    assert await stream.next_named("daemon") == {"pid": 4242, "connected": True}
    again = await stream.next_named("services")  # the restart history now has proxy's exit
    assert again["services"][2]["restart_history"] == [{"at": "2026-12-07T20:00:00.500Z", "exit_code": 1}]
    response.close()


async def test_nothing_polls_the_daemon_while_no_page_is_connected(
    client: TestClient[Any, Any], fake: FakeSources
) -> None:
    response = await client.get("/api/stream", params={"token": TOKEN})
    await Stream(response).next_named("services")
    response.close()
    for _ in range(100):  # the server sees the page go away
        calls = fake.ps_calls
        await asyncio.sleep(0.1)
        if fake.ps_calls == calls:
            break
    calls = fake.ps_calls
    await asyncio.sleep(0.2)  # ten poll periods: none may come
    assert fake.ps_calls == calls


async def test_log_lines_come_in_batches(client: TestClient[Any, Any], fake: FakeSources) -> None:
    for n in range(3000):
        fake.log_lines.put_nowait(LogRecord(service="backend", text=f"line {n}"))
    response = await client.get("/api/logs/stream", params={"token": TOKEN, "services": "backend,db", "tail": "50"})
    stream = Stream(response)
    got: list[dict[str, str]] = []
    sizes = []
    while len(got) < 3000:
        batch = await stream.next_named("lines")
        sizes.append(len(batch))
        got.extend(batch)
    assert fake.log_request == (["backend", "db"], 50)
    assert [line["text"] for line in got] == [f"line {n}" for n in range(3000)]
    assert max(sizes) <= 2000 and len(sizes) >= 2
    response.close()
    missing = await client.get("/api/logs/stream", params={"token": TOKEN, "services": "nope"})
    assert missing.status == 404


def test_the_blocking_edge_quotes_the_engine_when_it_names_the_dependency() -> None:
    rows = [
        row("db", "fatal", reason="spent its restart budget"),
        row("backend", "blocked", reason="dependency db is fatal (x)"),
    ]
    needs = {"db": {}, "backend": {"db": "service_healthy"}}
    (edge,) = views.edges(rows, needs)
    assert edge.blocking and edge.reason == "dependency db is fatal (x)"
    rows = [
        row("db-replica", "starting"),
        row("db", "healthy"),
        row("backend", "created", reason="dependency db-replica"),
    ]
    (edge,) = views.edges(rows, {"backend": {"db": "service_healthy"}})
    assert not edge.blocking and edge.reason == ""


def test_the_entry_is_the_published_service_nothing_depends_on() -> None:
    db_port = PublishedPort(host_ip="127.0.0.1", host_port=5432, target=5432, protocol="tcp")
    web_port = PublishedPort(host_ip="::", host_port=8080, target=80, protocol="tcp")
    rows = [row("db", ports=[db_port]), row("web", ports=[web_port])]
    assert views.entry(rows, {"db": {}, "web": {"db": "service_started"}}) == "http://127.0.0.1:8080/"
    assert views.entry(rows[:1], {"db": {}, "web": {"db": "service_started"}}) == "http://127.0.0.1:5432/"
    assert views.entry([], {}) is None


def test_event_lines_as_records() -> None:
    line = '{"kind": "exited", "service": "db", "message": "db exited", "at": 1796673600.5, "data": {"exit_code": 3}}'
    record = views.event_record(line)
    assert record is not None and record.at == "2026-12-07T20:00:00.500Z" and record.data == {"exit_code": 3}
    assert views.event_record('{"kind": "exi') is None


async def test_only_the_loopback_names_on_its_port_are_answered(
    client: TestClient[Any, Any], fake: FakeSources
) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends `Host: evil.example:PORT`
    (and its own cookies, not the dashboard's); it gets 421 whatever else it carries."""
    port, q = client.port, {"token": TOKEN}
    assert port is not None
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert (await client.get("/api/services", params=q, headers={"Host": host})).status == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", "127.0.0.1", f"10.0.0.1:{port}"):
        refused = await client.get("/api/services", params=q, headers={"Host": host})
        assert refused.status == 421, host
        text = await refused.text()
        assert f"127.0.0.1:{port}" in text and "unistack dashboard" in text
    post = await client.post(
        "/api/services/db/restart", headers={"Host": f"evil.example:{port}", "X-Unistack-Token": TOKEN}
    )
    assert post.status == 421 and fake.acted == []
    assert (await client.get("/", headers={"Host": f"evil.example:{port}"})).status == 421  # before the token


async def test_a_skipped_check_keeps_its_verdict(client: TestClient[Any, Any], fake: FakeSources) -> None:
    """validate's JSON (pass, skip, fail) as the report: `ok` false only for a failure, the verdict kept as it
    was, so that the page can show a skipped check as skipped rather than passed."""
    printed = json.dumps(
        [
            {"name": "db ready", "component": "db", "verdict": "pass", "duration": 0.01, "detail": "", "hint": ""},
            {
                "name": "page renders",
                "component": "proxy",
                "verdict": "skip",
                "duration": 0.0,
                "detail": "only with --browser",
                "hint": "",
            },
        ]
    ).encode()
    report = validate_report(printed, 1796673600.5)
    assert report.ok and [(c.verdict, c.ok) for c in report.checks] == [("pass", True), ("skip", True)]
    assert report.checks[1].message == "only with --browser"
    failing = json.loads(printed)
    failing[0]["verdict"] = "fail"
    assert not validate_report(json.dumps(failing).encode(), 1796673600.5).ok

    fake.report = report
    q, h = {"token": TOKEN}, {"Origin": origin(client)}
    served = await (await client.post("/api/validate", params=q, headers=h)).json()
    assert [(c["name"], c["verdict"], c["ok"]) for c in served["checks"]] == [
        ("db ready", "pass", True),
        ("page renders", "skip", True),
    ]
