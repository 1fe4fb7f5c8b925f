"""The live feed, WebSocket /api/ws through the proxy: two clients both see a note created, updated and deleted
over HTTP."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from .conftest import Stack

pytestmark = pytest.mark.e2e

EVENT_TIMEOUT = 20.0


def next_event_about(ws: ClientConnection, note_id: int, deadline: float) -> dict[str, Any]:
    """The next event about this note (events about other notes, from other tests, are skipped)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no event about note {note_id} within {EVENT_TIMEOUT:g}s")
        event: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if event.get("id") == note_id or event.get("note", {}).get("id") == note_id:
            return event


def test_two_clients_see_every_change(stack: Stack, api: httpx.Client) -> None:
    with contextlib.ExitStack() as sockets:
        clients = [
            sockets.enter_context(connect(stack.ws_url, proxy=None, open_timeout=EVENT_TIMEOUT, close_timeout=5))
            for _ in range(2)
        ]
        title = f"live {uuid.uuid4().hex[:8]}"
        note = api.post("/api/notes", json={"title": title, "body": "from HTTP"}).json()
        api.patch(f"/api/notes/{note['id']}", json={"title": title + " (edited)"}).raise_for_status()
        api.delete(f"/api/notes/{note['id']}").raise_for_status()

        deadline = time.monotonic() + EVENT_TIMEOUT
        for ws in clients:
            created, updated, deleted = (next_event_about(ws, note["id"], deadline) for _ in range(3))
            assert created == {"type": "note.created", "note": note}
            assert updated["type"] == "note.updated"
            assert (updated["note"]["id"], updated["note"]["title"]) == (note["id"], title + " (edited)")
            assert deleted == {"type": "note.deleted", "id": note["id"]}


def test_the_feed_is_only_a_websocket(api: httpx.Client) -> None:
    """A plain GET on the WebSocket route is not served as something else (an HTML page, say)."""
    response = api.get("/api/ws")
    assert response.status_code in (400, 404, 405, 426)
    assert response.headers["cache-control"] == "no-store"
