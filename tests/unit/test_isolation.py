"""The container isolation check (``db isolated``) with fakes: the engine's record of the container, the host's TCP
connections and the runtime's exec (the listener table, the probe from a container off the internal network) are
scripted. No engine, no sockets. Also: the HTTP checks beside it leave the event loop free (their TLS context is
made once, before any check's clock starts), which is what made ``db isolated`` run out of time under load."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any, cast

import pytest

from unistack.config import load
from unistack.config.model import Healthcheck, Project, Service
from unistack.engine.states import PublishedPort, ServiceRow
from unistack.ops import checks_http, isolation
from unistack.ops.validate import Context, Outcome, plan
from unistack.runtimes import DOCKER
from unistack.runtimes.base import Handle, ProbeResult, Runtime

COMPOSE = """\
    name: shop
    x-unistack:
      validate:
        - {name: page, component: proxy, http: {path: /}}
        - {name: api, component: api, http: {path: /api/health}}
    services:
      db: {image: postgres, networks: [data]}
      api: {image: api, networks: [edge, data]}
      proxy: {image: caddy, networks: [edge], ports: ["127.0.0.1:8080:8080"]}
    networks:
      edge: {}
      data: {internal: true}
    """

DB_IP = "10.89.0.2"
# /proc/net/tcp of the db container: 5432 on every address (LISTEN, 0A), and a client connection (01)
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0000 100 0 0 10 0
   1: 0200590A:1538 0300590A:A1B2 01 00000000:00000000 00:00000000 00000000   999        0 2 1 0000 100 0 0 10 0
"""


def project_from(tmp_path: Path) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
    return load(cwd=tmp_path, env={"UNISTACK_STATE_DIR": str(tmp_path / "state")})


def row(service: str, container: str, ports: list[PublishedPort] | None = None) -> ServiceRow:
    return ServiceRow(
        service=service,
        state="healthy",
        health="healthy",
        restarts=0,
        exit_code=None,
        started_at=None,
        last_check=None,
        pid=None,
        container=container,
        ports=ports or [],
        reason="",
    )


ROWS = [
    row("db", "c-db"),
    row("api", "c-api"),
    row("proxy", "c-proxy", [PublishedPort(host_ip="127.0.0.1", host_port=8080, target=8080, protocol="tcp")]),
]


def inspect(container_id: str) -> dict[str, Any] | None:
    """The engine's record of the db: on the internal network only, no port bindings, a pid not ours to read."""
    assert container_id == "c-db"
    return {
        "State": {"Pid": 0},  # /proc/0 does not exist: the listener table is read inside, by exec
        "HostConfig": {"PortBindings": {}},
        "NetworkSettings": {"Networks": {"shop_data": {"IPAddress": DB_IP}}},
    }


class FakeRuntime:
    """The runtime's exec: ``cat /proc/net/tcp`` in the db, the reachability probe in any other container (its
    exit code scripted per container: 0 reached, 1 not, 3 every port answers)."""

    def __init__(self, probe_exits: dict[str, int]) -> None:
        self.probe_exits = probe_exits
        self.probed: list[str] = []

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        script = check.test[2]
        if script.startswith("cat /proc/net/tcp"):
            assert handle.service == "db"
            return ProbeResult(True, 0, PROC_NET_TCP)
        assert script == isolation.PROBE and check.test[4:6] == (DB_IP, "5432")
        self.probed.append(handle.service)
        code = self.probe_exits[handle.service]
        return ProbeResult(code == 0, code, "")


def connect_to(answering: set[tuple[str, int]], otherwise: isolation.Answer = "refused") -> isolation.Connect:
    """The host's TCP connections: those in ``answering`` succeed, every other one is ``otherwise``."""

    def connect(host: str, port: int) -> isolation.Answer:
        return "connected" if (host, port) in answering else otherwise

    return connect


def db_isolated(tmp_path: Path, runtime: FakeRuntime, connect: isolation.Connect) -> Outcome:
    ctx = Context(
        project=project_from(tmp_path),
        running=None,
        rows=ROWS,
        runtime_name=DOCKER,
        runtime=lambda: cast(Runtime, runtime),
    )
    return asyncio.run(isolation.container(ctx, ROWS[0], inspect=inspect, connect=connect))


def test_db_unreachable_from_the_host_and_from_containers_off_its_network_passes(tmp_path: Path) -> None:
    runtime = FakeRuntime({"proxy": 1})
    outcome = db_isolated(tmp_path, runtime, connect_to(set()))
    assert outcome.verdict == "pass", outcome
    assert f"{DB_IP}:5432 (shop_data)" in outcome.detail
    assert runtime.probed == ["proxy"]  # api is on the data network: it may reach the db


def test_db_reachable_from_the_host_fails(tmp_path: Path) -> None:
    outcome = db_isolated(tmp_path, FakeRuntime({"proxy": 1}), connect_to({(DB_IP, 5432)}))
    assert outcome.verdict == "fail", outcome
    assert f"reachable from the host at {DB_IP}:5432 (shop_data is internal)" in outcome.detail


def test_db_reachable_from_a_container_off_its_network_fails(tmp_path: Path) -> None:
    outcome = db_isolated(tmp_path, FakeRuntime({"proxy": 0}), connect_to(set()))
    assert outcome.verdict == "fail", outcome
    assert f"reachable from proxy (not on shop_data) at {DB_IP}:5432" in outcome.detail


def test_an_intercepting_proxy_on_the_way_is_not_a_reached_db(tmp_path: Path) -> None:
    every_port = connect_to({(DB_IP, port) for port in (1, 5432)})
    outcome = db_isolated(tmp_path, FakeRuntime({"proxy": isolation.INTERCEPTED}), every_port)
    assert outcome.verdict == "pass", outcome
    assert "(from the host, every port of 10.89.0.2 answers: intercepted on the way)" in outcome.detail
    assert "(from proxy, every port of 10.89.0.2 answers: intercepted on the way)" in outcome.detail


def test_a_control_port_that_times_out_proves_nothing_either_way(tmp_path: Path) -> None:
    """Reached means: the port answered and the control port at the same address was refused. A control that
    times out (a slow proxy on the way, a probe that could not start in time under load) is not a refusal."""
    slow_control = connect_to({(DB_IP, 5432)}, otherwise="silent")
    outcome = db_isolated(tmp_path, FakeRuntime({"proxy": isolation.UNDECIDED}), slow_control)
    assert outcome.verdict == "pass", outcome
    assert "(from the host, 10.89.0.2:5432 answered but port 1 neither answered nor refused: not judged)" in (
        outcome.detail
    )
    assert "(from proxy, 10.89.0.2:5432 answered but port 1 neither answered nor refused: not judged)" in (
        outcome.detail
    )


@pytest.fixture
def fresh_tls() -> None:
    checks_http.tls.cache_clear()


@pytest.mark.usefixtures("fresh_tls")
def test_the_http_checks_tls_context_is_made_once_before_any_check_runs(tmp_path: Path) -> None:
    """The cause of a flaky ``db isolated`` ("no verdict within 5s" at load 10-15): every HTTP check's client
    loaded the CA bundle on the event loop, stalling every other check (seconds, under load) inside its time."""
    ctx = Context(project=project_from(tmp_path), running=None, rows=ROWS, runtime_name=DOCKER)
    checks = plan(ctx)
    assert checks_http.tls.cache_info().currsize == 1  # made by plan, before run_checks starts any clock
    assert sum(1 for check in checks if check.component in ("proxy", "api")) >= 3
    made = checks_http.tls.cache_info().misses
    clients = [checks_http.client(ctx, "http://127.0.0.1:8080", 1.0) for _ in range(3)]
    assert checks_http.tls.cache_info().misses == made  # every client takes the one context
    for http in clients:
        asyncio.run(http.aclose())


def test_the_container_checks_runtime_is_made_before_any_check_runs(tmp_path: Path) -> None:
    """The docker runtime and the Docker SDK are imported by plan, not on the event loop inside a check's time."""
    made: list[str] = []

    def runtime() -> Runtime:
        made.append("runtime")
        return cast(Runtime, FakeRuntime({}))

    ctx = Context(project=project_from(tmp_path), running=None, rows=ROWS, runtime_name=DOCKER, runtime=runtime)
    checks = plan(ctx)
    assert made == ["runtime"]
    assert {check.name for check in checks} >= {"db isolated", "api isolated", "proxy isolated"}
