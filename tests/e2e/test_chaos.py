"""The real stack under a write load while each long-running service's main process is SIGKILLed once (the
small version of bench/chaos.py, which runs 100 seeded kills per runtime): every write the API acknowledged (201)
is still there afterwards, every service is healthy again, none spent its restart budget. Host processes: the pid
``ps`` shows; containers: the container's PID 1 as the host sees it."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from .conftest import LONG_RUNNING, READY_TIMEOUT, Stack, wait_for

pytestmark = pytest.mark.e2e


class Writer(threading.Thread):
    """POSTs notes through the proxy until stopped (at most 20,000, at most 10 minutes); keeps the acknowledged ids."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.done = threading.Event()
        self.acknowledged: list[int] = []
        self.failed = 0

    def run(self) -> None:
        deadline = time.monotonic() + 600
        with self.stack.client() as client:
            for n in range(20_000):
                if self.done.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.post("/api/notes", json={"title": f"chaos {n}"})
                    if response.status_code == 201:
                        self.acknowledged.append(int(response.json()["id"]))
                        self.done.wait(0.02)
                        continue
                except httpx.HTTPError:
                    pass
                self.failed += 1
                self.done.wait(0.05)


def main_pid(stack: Stack, service: str) -> int:
    row = stack.ps()[service]
    if stack.runtime == "process":
        return int(row["pid"])
    (container,) = [c for c in stack.containers() if c.labels.get("com.docker.compose.service") == service]
    return int(container.attrs["State"]["Pid"])


def test_acknowledged_writes_survive_a_kill_of_each_service(stack: Stack) -> None:
    stack.wait_healthy()
    writer = Writer(stack)
    writer.start()
    try:
        wait_for(lambda: writer.acknowledged, 60, "the first acknowledged write")
        for service in ("db", "backend", "proxy"):
            before = stack.ps()[service]
            os.kill(main_pid(stack, service), signal.SIGKILL)
            wait_for(
                lambda service=service, before=before: (
                    (row := stack.ps(check=False).get(service, {})).get("state") == "healthy"
                    and row["restarts"] > before["restarts"]
                ),
                READY_TIMEOUT,
                f"{service} restarted and healthy after its SIGKILL",
            )
            stack.wait_healthy()
            count = len(writer.acknowledged)
            wait_for(lambda count=count: len(writer.acknowledged) > count, 60, f"writes acknowledged after {service}")
    finally:
        writer.done.set()
        writer.join(timeout=30)
    rows = stack.wait_healthy()
    assert not [name for name in LONG_RUNNING if rows[name]["state"] == "fatal"]
    with stack.client() as client:
        seen: set[int] = set()
        for page in range(100):
            notes = client.get("/api/notes", params={"skip": page * 1000, "limit": 1000}).json()
            seen.update(note["id"] for note in notes)
            if len(notes) < 1000:
                break
        lost = [i for i in writer.acknowledged if i not in seen and client.get(f"/api/notes/{i}").status_code != 200]
        assert lost == [], f"{len(lost)} of {len(writer.acknowledged)} acknowledged writes lost: {lost[:20]}"
        for note_id in writer.acknowledged:  # restore: the notes the other tests see are theirs
            client.delete(f"/api/notes/{note_id}")
