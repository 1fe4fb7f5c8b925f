"""The stack's network surface as host processes: the proxy's port on 127.0.0.1 is the only TCP port any of its
processes listens on; the database refuses TCP and the backend reaches it over its unix socket. (Containers have
their own private networks: test_containers.py.)"""

from __future__ import annotations

import errno
import itertools
import re
import socket

import httpx
import psutil
import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def processes(stack: Stack) -> Stack:
    """The stack, when it runs as host processes (these tests read the processes' own sockets)."""
    if stack.runtime != "process":
        pytest.skip("host processes only; containers: test_containers.py")
    return stack


POSTGRES_DEFAULT_PORT = 5432


def processes_of(stack: Stack) -> dict[str, list[psutil.Process]]:
    """Each running service's process and all of its descendants (postgres forks one per connection)."""
    found = {}
    for name, pid in stack.service_pids().items():
        main = psutil.Process(pid)
        found[name] = [main, *main.children(recursive=True)]
    return found


def inet_sockets(processes: list[psutil.Process]) -> list[tuple[int, str, psutil._common.pconn]]:
    sockets = []
    for process in processes:
        try:
            sockets += [(process.pid, process.name(), conn) for conn in process.net_connections(kind="inet")]
        except psutil.NoSuchProcess:
            continue  # a postgres child that ended meanwhile
    return sockets


def configured_postgres_ports(stack: Stack) -> set[int]:
    """5432, and whatever -p / port= the db service's postgres was started with."""
    ports = {POSTGRES_DEFAULT_PORT}
    argv = psutil.Process(stack.service_pids()["db"]).cmdline()
    for flag, value in itertools.pairwise(argv):
        if flag == "-p" and value.isdigit():
            ports.add(int(value))
        if flag == "-c" and value.startswith("port=") and value[5:].isdigit():
            ports.add(int(value[5:]))
    return ports


def test_only_the_proxy_listens_on_tcp(processes: Stack, api: httpx.Client) -> None:
    stack = processes
    api.get("/api/notes").raise_for_status()  # the backend holds a pooled database connection from here on
    processes = processes_of(stack)
    assert set(processes) == {"db", "backend", "proxy"}, processes

    listening = {
        (name, conn.laddr.ip, conn.laddr.port)
        for name, procs in processes.items()
        for _, _, conn in inet_sockets(procs)
        if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN
    }
    assert listening == {("proxy", "127.0.0.1", stack.port)}, listening
    udp = [
        (name, conn.laddr)
        for name, procs in processes.items()
        for _, _, conn in inet_sockets(procs)
        if conn.type == socket.SOCK_DGRAM
    ]
    assert not udp, f"UDP sockets: {udp}"

    # Nothing but the proxy has any IP socket at all: the backend talks to the database over a unix socket.
    for name in ("db", "backend"):
        assert not inet_sockets(processes[name]), f"{name} has IP sockets: {inet_sockets(processes[name])}"

    # the published ports in the resolved configuration agree: the proxy's, on loopback, and nothing else
    config = stack.cli("config", "--format", "json").stdout
    assert f'"published": {stack.port}' in config or f'"published":{stack.port}' in config


def test_the_database_refuses_tcp(processes: Stack) -> None:
    stack = processes
    for port in sorted(configured_postgres_ports(stack)):
        for host in ("127.0.0.1", "::1"):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                try:
                    sock.connect((host, port))
                except OSError as exc:  # refused, or no IPv6 on this machine
                    assert exc.errno in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH), exc
                    continue
                owner = [c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port]
                pytest.fail(f"{host}:{port} accepted a TCP connection (listening: pids {owner})")


def test_the_backend_reaches_the_database_over_its_unix_socket(processes: Stack, api: httpx.Client) -> None:
    stack = processes
    ready = api.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == {"ok": True, "detail": "SELECT 1 answered"}
    api.get("/api/notes").raise_for_status()
    # PostgreSQL names each connection's peer in its process title: "[local]" for a unix socket, host(port) for TCP.
    titles = [p.cmdline()[0] for p in processes_of(stack)["db"][1:] if p.cmdline() and " app " in p.cmdline()[0]]
    assert titles, "no backend connection in the database's processes"
    assert all("[local]" in title for title in titles), titles


def test_the_instance_is_production_like(stack: Stack, index_html_links: list[str]) -> None:
    """Built files, not the Vite dev server; uvicorn without --reload: edits to the sources cannot restart it."""
    rows = stack.ps()
    assert "frontend" not in rows, "the dev server runs (profile dev)"
    assert rows["frontend-build"]["exit_code"] == 0
    if stack.runtime == "process":
        backend = psutil.Process(rows["backend"]["pid"])
        assert "--reload" not in backend.cmdline(), backend.cmdline()
    else:
        (container,) = [c for c in stack.containers() if c.labels.get("com.docker.compose.service") == "backend"]
        assert "BACKEND_RELOAD=0" in container.attrs["Config"]["Env"], container.attrs["Config"]["Env"]
    assert any(link.startswith("/assets/") for link in index_html_links), index_html_links
    assert not [link for link in index_html_links if link.startswith("/src/") or "@vite" in link], index_html_links


@pytest.fixture
def index_html_links(stack: Stack) -> list[str]:
    with stack.client() as client:
        html = client.get("/").text
    return re.findall(r'(?:src|href)="(/[^"]+)"', html)
