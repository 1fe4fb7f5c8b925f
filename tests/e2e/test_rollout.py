"""A start-first update of the real stack under a steady load through the proxy (both runtimes).

The backend has ``deploy.update_config.order: start-first`` (stack/compose.yaml): a changed setting
(``MAX_UPLOAD_BYTES``, which ``/api/info`` reports) is rolled out with the new backend started beside the old,
switched to once healthy, the old one drained. Requests from two threads, one connection each, bounded in count
and time, may not fail once, and the new backend answers afterwards. The setting is changed back the same way at
the end (a second update), so the shared instance runs its configuration again for the tests after this one
(``validate``'s drift check would see the difference otherwise).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from .conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

CHANGED = "10485761"  # one byte more than the stack's default


class Load:
    """GET /api/info through the proxy from two threads, a new connection per request, until stopped."""

    def __init__(self, stack: Stack, seconds: float = 240.0, limit: int = 20000) -> None:
        self.stack, self.seconds, self.limit = stack, seconds, limit
        self.answers: Counter[int] = Counter()  # by the max_upload_bytes the backend reported
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(2)]

    def _client(self) -> None:
        deadline = time.monotonic() + self.seconds
        for _ in range(self.limit):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                with self.stack.client() as client:  # one connection per request, as a browser's new visitor
                    response = client.get("/api/info")
                if response.status_code != 200:
                    raise httpx.HTTPError(f"answered {response.status_code}: {response.text[:80]}")
                self.answers[int(response.json()["max_upload_bytes"])] += 1
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                self.failures.append(f"{time.monotonic():.3f} {type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


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
    with Load(stack) as load:
        wait_for(lambda: sum(load.answers.values()) > 20, 60, "the load to be answered")
        try:
            out = update(stack, CHANGED)
            assert "backend: updated start-first" in out, out
            wait_for(lambda: load.answers[int(CHANGED)] > 20, 60, "the new backend to answer")
            after = stack.ps()["backend"]
        finally:
            back = update(stack, original)  # the shared instance as it was, the same way
        served = load.answers.copy()
        wait_for(lambda: sum(load.answers.values()) > sum(served.values()) + 20, 60, "the load to go on")
    assert load.failures == [], load.failures[:5]
    assert "backend: updated start-first" in back, back
    key = "container" if stack.runtime == "docker" else "pid"
    assert after[key] != before[key] and after["state"] == "healthy", (before, after)
    assert stack.ps()["backend"]["state"] == "healthy"
