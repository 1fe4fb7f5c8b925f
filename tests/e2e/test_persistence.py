"""Data outlives the processes: `down` + `up`, a SIGKILLed supervisor daemon (its replacement re-adopts the live
services), and a power-cut-like stop (SIGKILL to every process group and the daemon; PostgreSQL recovers from its
WAL). Only `down -v` removes the data. Stops and restarts the whole stack: runs last."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from typing import Any

import httpx
import pytest

from .conftest import LONG_RUNNING, ONE_SHOT, Stack, gone, wait_for

pytestmark = pytest.mark.e2e

DATA = b"persist me\n" + os.urandom(256 * 1024)
RERUN_GRACE = 5.0
RECOVERY = "not properly shut down; automatic recovery in progress"


def proxy_refuses(stack: Stack) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", stack.port))
        except OSError:
            return True
    return False


def assert_still_there(api: httpx.Client, note: dict[str, Any], attachment: dict[str, Any]) -> None:
    read = api.get(f"/api/notes/{note['id']}")
    assert read.status_code == 200, read.text
    assert (read.json()["title"], read.json()["attachments"]) == (note["title"], [attachment])
    download = api.get(f"/api/attachments/{attachment['id']}")
    assert (download.status_code, download.content) == (200, DATA)


def test_data_survives_down_daemon_kill_and_power_cut(stack: Stack, api: httpx.Client) -> None:
    note = api.post("/api/notes", json={"title": "persistent", "body": "with a file"}).json()
    uploaded = api.post(
        f"/api/notes/{note['id']}/attachments", files={"file": ("keep.bin", DATA, "application/octet-stream")}
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()

    # 1. down (data kept) and up again
    pids = stack.incarnations()
    stack.down()
    assert proxy_refuses(stack), "the proxy still answers after down"
    assert all(stack.incarnation_gone(i) for i in pids.values()), f"left running after down: {pids}"
    stack.up()
    stack.wait_ready()
    assert_still_there(api, note, attachment)

    # 2. the supervisor daemon SIGKILLed: the services go on; the next command's new daemon re-adopts them
    pids = stack.incarnations()
    old_daemon = int(stack.state()["daemon_pid"])
    os.kill(old_daemon, signal.SIGKILL)
    wait_for(lambda: gone(old_daemon), 10, f"the daemon {old_daemon} to die")
    assert_still_there(api, note, attachment)
    created = api.post("/api/notes", json={"title": "made without a daemon"})
    assert created.status_code == 201
    rows = stack.wait_healthy()  # `ps` starts a new daemon
    adopted = {name: (rows[name]["pid"] or rows[name]["container"], rows[name]["started_at"]) for name in LONG_RUNNING}
    assert adopted == pids
    assert all(rows[name]["restarts"] == 0 for name in LONG_RUNNING), rows
    new_daemon = int(stack.state()["daemon_pid"])
    assert new_daemon != old_daemon and not gone(new_daemon)
    assert_still_there(api, note, attachment)
    assert api.get(f"/api/notes/{created.json()['id']}").status_code == 200

    # 3. a power cut: every process group and the daemon SIGKILLed at once, no cleanup; then up again
    recoveries_before = stack.cli("logs", "db").stdout.count(RECOVERY)
    daemon = int(stack.state()["daemon_pid"])
    stack.kill_everything()
    assert gone(daemon), "the daemon survived"
    assert proxy_refuses(stack), "the proxy still answers after SIGKILL"
    stack.up()
    stack.wait_ready()
    after = stack.incarnations()
    assert all(after[name] != pids[name] for name in LONG_RUNNING), (pids, after)
    assert_still_there(api, note, attachment)
    assert api.get(f"/api/notes/{created.json()['id']}").status_code == 200
    db_logs = stack.cli("logs", "db").stdout  # what postgres said on this start: it recovered from its WAL
    assert db_logs.count(RECOVERY) > recoveries_before, db_logs[-3000:]

    api.delete(f"/api/notes/{created.json()['id']}")
    with contextlib.suppress(httpx.HTTPError):
        api.delete(f"/api/notes/{note['id']}")


def test_a_replacement_daemon_does_not_rerun_finished_one_shots(stack: Stack, api: httpx.Client) -> None:
    stack.wait_healthy()
    old_daemon = int(stack.state()["daemon_pid"])
    killed_at = time.time()
    os.kill(old_daemon, signal.SIGKILL)
    wait_for(lambda: gone(old_daemon), 10, f"the daemon {old_daemon} to die")
    stack.wait_healthy()  # `ps` brings the replacement

    def rerun() -> list[str]:
        return [
            f"{e['service']}: {e['message']}"
            for e in stack.events()
            if e["at"] > killed_at and e["kind"] in ("starting", "started") and e["service"] in ONE_SHOT
        ]

    try:
        # Waiting for something not to happen: the replacement starts them (if it does) within a second of adopting.
        deadline = time.monotonic() + RERUN_GRACE
        while time.monotonic() < deadline and not rerun():
            time.sleep(0.2)
        assert not rerun(), rerun()
    finally:
        stack.wait_healthy()  # leave the stack settled for the next test


def test_down_v_removes_the_data(stack: Stack, api: httpx.Client) -> None:
    note = api.post("/api/notes", json={"title": "doomed"}).json()
    attachment = api.post(
        f"/api/notes/{note['id']}/attachments", files={"file": ("doomed.txt", b"bye", "text/plain")}
    ).json()
    stack.down(volumes=True)
    assert proxy_refuses(stack)
    stack.up()
    stack.wait_ready()
    assert api.get("/api/notes").json() == []
    assert api.get(f"/api/attachments/{attachment['id']}").status_code == 404
    assert api.get(f"/api/notes/{note['id']}").status_code == 404
