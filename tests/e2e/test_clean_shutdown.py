"""PostgreSQL never shuts down uncleanly on `down`, in either runtime: after `down` and `up`, the database's latest
start reads "database system was shut down at" (a checkpoint was written), never "not properly shut down",
"automatic recovery in progress" or "was interrupted"; and as host processes the old server said "database
system is shut down" before it exited. bench/cycles.py counts the same over 50 cycles per runtime. Disruptive
(the stack is down for a moment): runs with the disruptive tests, and leaves the stack up and serving."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e

START = re.compile(r"LOG:\s+starting PostgreSQL")
UNCLEAN = re.compile(r"not properly shut down|automatic recovery in progress|was interrupted")


def test_down_then_up_is_a_clean_shutdown_and_a_clean_start(stack: Stack, api: httpx.Client) -> None:
    note = api.post("/api/notes", json={"title": "written before down", "body": "x"})  # something in the WAL
    assert note.status_code == 201, note.text
    stack.down()
    stack.up()
    stack.wait_ready()
    text = stack.cli("logs", "db").stdout
    starts = [m.start() for m in START.finditer(text)]
    assert starts, text[-3000:]
    latest = text[starts[-1] :]
    assert "database system was shut down at" in latest, latest[:3000]
    assert not UNCLEAN.search(latest), latest[:3000]
    if stack.runtime == "process":  # the same log file holds the stopped server's last words (a container's log
        # went with its container)
        before = text[starts[-2] if len(starts) > 1 else 0 : starts[-1]]
        assert "database system is shut down" in before, before[-3000:]
    assert api.get(f"/api/notes/{note.json()['id']}").status_code == 200
    api.delete(f"/api/notes/{note.json()['id']}")
