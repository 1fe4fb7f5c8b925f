"""A start-first update of the real stack under a steady load through the proxy (both runtimes).

The backend has ``deploy.update_config.order: start-first`` (stack/compose.yaml): a changed setting
(``MAX_UPLOAD_BYTES``, which ``/api/info`` reports) is rolled out with the new backend started beside the old,
switched to once healthy, the old one drained. Requests from two threads, one connection each, bounded in count
and time, may not fail once, and the new backend answers afterwards. The setting is changed back the same way at
the end (a second update), so the shared instance runs its configuration again for the tests after this one
(``validate``'s drift check would see the difference otherwise).
"""

from __future__ import annotations

import json

import pytest

from tests.loadclient import Load

from .conftest import HTTP_TIMEOUT, Stack, wait_for

pytestmark = pytest.mark.e2e

CHANGED = "10485761"  # one byte more than the stack's default


def _max_upload_bytes(body: bytes) -> str:
    """What /api/info says of the backend that answered: its MAX_UPLOAD_BYTES."""
    return str(int(json.loads(body)["max_upload_bytes"]))


def update(stack: Stack, value: str | None) -> str:
    if value is None:
        stack.env.pop("MAX_UPLOAD_BYTES", None)
    else:
        stack.env["MAX_UPLOAD_BYTES"] = value
    return stack.cli("up", "--wait", "--wait-timeout", "300", timeout=420).stdout


def test_a_backend_setting_rolled_out_start_first_drops_no_request(stack: Stack) -> None:
    stack.wait_ready()
    before = stack.ps()["backend"]
    original = stack.env.get("MAX_UPLOAD_BYTES")
    with Load(stack.port, "/api/info", read=_max_upload_bytes, timeout=HTTP_TIMEOUT, seconds=240) as load:
        wait_for(lambda: load.total() > 20, 60, "the load to be answered")
        try:
            out = update(stack, CHANGED)
            assert "backend: updated start-first" in out, out
            wait_for(lambda: load.count(CHANGED) > 20, 60, "the new backend to answer")
            after = stack.ps()["backend"]
        finally:
            back = update(stack, original)  # the shared instance as it was, the same way
        served = load.total()
        wait_for(lambda: load.total() > served + 20, 60, "the load to go on")
    assert load.failures == [], load.failures[:5]
    assert "backend: updated start-first" in back, back
    key = "container" if stack.runtime == "docker" else "pid"
    assert after[key] != before[key] and after["state"] == "healthy", (before, after)
    assert stack.ps()["backend"]["state"] == "healthy"
