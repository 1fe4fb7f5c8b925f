"""Start-first updates in containers under a steady load: a second container beside the old, switched to by DNS.

A small relay stands in for the proxy: for every connection it resolves the service's name and tries its
addresses in turn until one answers: one that refuses, as Go's dialer (Caddy's) does, and one that resets the
request before any answer (a connection the old server's kernel queued in the instant its listener closed), as
nginx's `proxy_next_upstream error` (its default) does. The load from the host goes through its
published loopback port, one connection per request, from two threads, bounded in count and time.

The relay also plays the dialer that still holds an address the name no longer gives (a connection attempt
retrying its SYN, a DNS cache: Docker's DNS answers with a TTL of 600 s): every 100 ms it sends a request to
each address the name ever resolved to and no longer does, and logs who answered. A new container given such an
address (Docker's IPAM hands out the lowest free one: the old container's of the update before) would answer
it before its healthcheck passed; the test reads that log, so it fails whenever that happens, not by chance.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.loadclient import Load
from unistack.control import client as daemon_client

from .support import Cli, requires_engine, unique_name

pytestmark = [pytest.mark.docker, requires_engine()]

WEB = r"""
import os, signal, socket, threading, time
version, never = os.environ["VERSION"], os.environ.get("NEVER_READY") == "1"
def answer(conn):
    with conn:
        request = conn.recv(4096)
        ok = not (request.startswith(b"GET /health") and never)
        body = (version + "\n").encode()
        status = b"200 OK" if ok else b"500 Not Ready"
        conn.sendall(b"HTTP/1.0 " + status + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
listener = socket.create_server(("0.0.0.0", 8000), backlog=128)
workers = []
def serve():
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        worker = threading.Thread(target=answer, args=(conn,))
        worker.start()
        workers.append(worker)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
accepting = threading.Thread(target=serve, daemon=True)
accepting.start()
print(version, "listening", flush=True)
stop.wait()
listener.shutdown(socket.SHUT_RDWR)  # refuse new connections at once, as uvicorn closes its listener
listener.close()
for worker in workers:
    worker.join()
time.sleep(float(os.environ.get("DRAIN", "0")))  # a long drain: the old incarnation still runs meanwhile
print(version, "stopped", flush=True)
"""

CHECK = (
    "import socket; s = socket.create_connection(('127.0.0.1', 8000), timeout=2); "
    "s.sendall(b'GET /health HTTP/1.0\\r\\n\\r\\n'); assert b' 200 ' in s.recv(100)"
)

RELAY = r"""
import socket, threading, time
seen = set()
def stale():
    told = set()
    while True:
        time.sleep(0.1)
        try:
            now = {a[4][0] for a in socket.getaddrinfo("web", 8000, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        for address in sorted(seen - now):
            try:
                with socket.create_connection((address, 8000), timeout=0.3) as s:
                    s.sendall(b"GET /stale HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                outcome = data.partition(b"\r\n\r\n")[2].decode().strip() or "closed"
            except OSError as exc:
                outcome = type(exc).__name__
            if (address, outcome) not in told:
                told.add((address, outcome))
                print("stale", address, outcome, flush=True)
threading.Thread(target=stale, daemon=True).start()
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
def serve(client):
    request = client.recv(65536)
    upstream, first = None, b""
    addresses = socket.getaddrinfo("web", 8000, type=socket.SOCK_STREAM)
    seen.update(a[4][0] for a in addresses)
    for *_, address in addresses:
        try:
            upstream = socket.create_connection(address[:2], timeout=2)
            upstream.sendall(request)
            first = upstream.recv(65536)
        except OSError:
            first = b""
        if first:
            break
        if upstream is not None:
            upstream.close()
            upstream = None
    if upstream is None:
        client.close()
        return
    client.sendall(first)
    back = threading.Thread(target=pipe, args=(upstream, client))
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()
listener = socket.create_server(("0.0.0.0", 9000))
print("relay listening", flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def compose() -> str:
    def program(text: str) -> str:
        return json.dumps(text)

    return f"""
services:
  web:
    image: ${{TEST_IMAGE}}
    command: ["python3", "-u", "-c", {program(WEB)}]
    environment:
      VERSION: ${{VERSION:-v1}}
      NEVER_READY: ${{NEVER_READY:-0}}
      DRAIN: ${{DRAIN:-0}}
    healthcheck:
      test: ["CMD", "python3", "-c", {program(CHECK)}]
      interval: 1s
      timeout: 3s
      retries: 2
      start_period: 4s
      start_interval: 200ms
    stop_grace_period: 5s
    deploy:
      update_config:
        order: start-first
  relay:
    image: ${{TEST_IMAGE}}
    command: ["python3", "-u", "-c", {program(RELAY)}]
    ports: ["127.0.0.1:${{RELAY_PORT}}:9000"]
    depends_on:
      web: {{condition: service_healthy}}
    stop_grace_period: 1s
"""


def wait_for(what: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def addresses(client: docker.DockerClient, container: str) -> list[str]:
    networks = client.containers.get(container).attrs["NetworkSettings"]["Networks"] or {}
    return [str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")]


def events(cli: Cli) -> list[str]:
    path = cli.folder / ".unistack" / cli.name / "logs" / "events.jsonl"
    return [f"{e['kind']} {e['message'][:150]}" for e in map(json.loads, path.read_text().splitlines())]


@pytest.fixture
def cli(tmp_path: Path, client: docker.DockerClient, image: str) -> Iterator[Cli]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = unique_name()
    (tmp_path / "compose.yaml").write_text(compose())
    instance = Cli(tmp_path, name, image, RELAY_PORT=str(port))
    try:
        yield instance
    finally:
        instance.finish(client)


def test_start_first_update_and_failed_update_drop_no_request(cli: Cli, client: docker.DockerClient) -> None:
    cli.run("up", "--wait", "--wait-timeout", "60")
    first = cli.ps()["web"]["container"]
    first_addresses = set(addresses(client, first))
    with Load(int(cli.env["RELAY_PORT"])) as load:
        wait_for(lambda: load.total() > 20, 20, "the load to be answered")
        cli.env["VERSION"] = "v2"
        result = cli.run("up", "--wait", "--wait-timeout", "60")
        assert "web: updated start-first" in result.stdout, result.stdout
        wait_for(lambda: load.count("v2") > 20, 20, "v2 to answer")
        second = cli.ps()["web"]
        assert second["container"] != first and second["state"] == "healthy"
        assert client.containers.get(f"{cli.name}-web-1").id == second["container"]  # renamed to Compose's name
        assert not first_addresses & set(addresses(client, second["container"]))
        cli.env.update(VERSION="v3", NEVER_READY="1")
        failed = cli.run("up", "--wait", "--wait-timeout", "60", check=False)
        served = load.count("v2")
        wait_for(lambda: load.count("v2") > served + 20, 20, "v2 to go on")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "web: the update's new incarnation failed its healthcheck" in failed.stderr, failed.stderr
    assert "v3 listening" in failed.stderr.partition("last log lines")[2], failed.stderr  # the new one's log
    stale = [
        line for line in client.containers.get(f"{cli.name}-relay-1").logs().decode().splitlines() if "stale" in line
    ]
    assert any(line.split()[1] in first_addresses for line in stale), stale  # the old address was dialled
    assert not [line for line in stale if line.endswith(" v3")], stale  # and never answered by the failed update
    assert load.failures == [], load.failures[:5]
    assert load.count("v3") == 0 and load.count("v1") > 0
    row = cli.ps()["web"]
    assert row["container"] == second["container"] and row["state"] == "healthy", (row, events(cli)[-12:])


def test_a_daemon_killed_between_the_switch_and_the_old_ones_stop_is_finished_by_the_next_command(
    cli: Cli, client: docker.DockerClient
) -> None:
    cli.env["DRAIN"] = "4"  # the old container drains 4 s after its stop signal: the daemon dies meanwhile
    cli.run("up", "--wait", "--wait-timeout", "60")
    first = cli.ps()["web"]["container"]
    cli.env["VERSION"] = "v2"
    argv = [sys.executable, "-m", "unistack", "-p", cli.name, "--runtime", "docker", "up", "--wait"]
    update = subprocess.Popen(argv, cwd=cli.folder, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(" switched to the new incarnation" in e for e in events(cli)), 60, "the switch")
        pid = daemon_client.pid_of(cli.folder / ".unistack" / cli.name)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    finally:
        update.wait(timeout=60)
    assert client.containers.get(first).status == "running"  # killed inside the window: the old one drains

    def web_containers() -> list[Any]:
        labels = [f"com.docker.compose.project={cli.name}", "com.docker.compose.service=web"]
        return list(client.containers.list(all=True, filters={"label": labels}))

    def finished() -> bool:
        row = cli.ps()["web"]
        return row["state"] == "healthy" and len(web_containers()) == 1 and row["container"] != first

    wait_for(finished, 60, "the next command to finish the update")
    (only,) = web_containers()
    assert only.name == f"{cli.name}-web-1" and only.status == "running", only.name
    assert "VERSION=v2" in only.attrs["Config"]["Env"]
    assert any("finished the switch" in e for e in events(cli)), events(cli)[-8:]
