"""Migration 0002 (note.pinned) in the running stack: set through the API, and still there, with the database at
head, after `restart` and after `down` + `up`. Restarts the whole stack: runs after the other tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import LONG_RUNNING, READY_TIMEOUT, Stack, wait_for

pytestmark = pytest.mark.e2e

HEAD = "0002"


def assert_at_head(api: httpx.Client) -> None:
    ready = api.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["migrations"] == {"ok": True, "detail": f"at head {HEAD}"}


def test_pinned_survives_restart_and_down_up(stack: Stack, api: httpx.Client) -> None:
    assert_at_head(api)
    note = api.post("/api/notes", json={"title": f"pin me {uuid.uuid4().hex[:6]}"}).json()
    assert note["pinned"] is False
    pinned = api.patch(f"/api/notes/{note['id']}", json={"pinned": True})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pinned"] is True
    other = api.post("/api/notes", json={"title": "not pinned"}).json()

    before = stack.incarnations()
    stack.cli("restart")

    def restarted() -> dict[str, Any] | None:
        rows = stack.healthy()
        if not rows:
            return None
        now = {name: (rows[name]["pid"] or rows[name]["container"], rows[name]["started_at"]) for name in LONG_RUNNING}
        return rows if all(now[name] != before[name] for name in LONG_RUNNING) else None

    wait_for(restarted, READY_TIMEOUT, "every service restarted (new incarnations) and healthy")
    stack.wait_ready()
    assert_at_head(api)
    assert api.get(f"/api/notes/{note['id']}").json()["pinned"] is True
    assert api.get(f"/api/notes/{other['id']}").json()["pinned"] is False

    stack.down()
    stack.up()
    stack.wait_ready()
    assert_at_head(api)
    assert stack.ps()["migrate"]["exit_code"] == 0  # ran again, found nothing to do
    assert api.get(f"/api/notes/{note['id']}").json() == pinned.json()
    listed = {n["id"]: n["pinned"] for n in api.get("/api/notes", params={"limit": 1000}).json()}
    assert (listed[note["id"]], listed[other["id"]]) == (True, False)

    api.delete(f"/api/notes/{note['id']}")
    api.delete(f"/api/notes/{other['id']}")
