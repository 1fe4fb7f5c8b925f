"""Backup and restore of the real stack (its database and its uploads, as stack/compose.yaml declares them), per
runtime: a backup taken while writes go on through the proxy holds every write acknowledged before it started; a
restore after changes and deletions brings back every note and every attachment's bytes (compared by content);
a damaged archive changes nothing. Restore stops and starts the backend and the proxy: runs with the disruptive
tests."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e


def content(api: httpx.Client) -> dict[int, Any]:
    """Every note (title, body) and each of its attachments' name and sha256 of its bytes."""
    found: dict[int, Any] = {}
    skip = 0
    while page := api.get("/api/notes", params={"skip": skip, "limit": 1000}).json():
        for note in page:
            files = []
            for attachment in note.get("attachments") or []:
                data = api.get(f"/api/attachments/{attachment['id']}")
                assert data.status_code == 200, data.text
                files.append((attachment.get("filename"), hashlib.sha256(data.content).hexdigest()))
            found[note["id"]] = (note["title"], note.get("body"), sorted(files, key=str))
        skip += len(page)
    return found


def test_backup_under_load_then_restore_brings_everything_back(stack: Stack, api: httpx.Client) -> None:
    for index in range(3):
        note = api.post("/api/notes", json={"title": f"kept {index}", "body": "with a file"}).json()
        data = os.urandom(50_000 + index)
        uploaded = api.post(
            f"/api/notes/{note['id']}/attachments", files={"file": (f"f{index}.bin", data, "application/octet-stream")}
        )
        assert uploaded.status_code == 201, uploaded.text

    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with stack.client() as client:
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline:
                made = client.post("/api/notes", json={"title": "during the backup"})
                if made.status_code == 201:
                    acknowledged.append(made.json()["id"])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(acknowledged) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        before_start = list(acknowledged)
        done = stack.cli("backup")
    finally:
        stop.set()
        thread.join(timeout=150)
    assert before_start and len(acknowledged) > len(before_start), "no writes during the backup"
    archive = Path(done.stdout.split(" into ")[1].split(" (")[0])
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {(p["service"], p["kind"]) for p in manifest["parts"]} == {("db", "postgres"), ("backend", "volume")}
    assert manifest["runtime"] == stack.runtime
    # the archive's state: everything up to the backup's start, some of what came during it, nothing after
    with stack.client() as client:
        at_backup = {k: v for k, v in content(client).items()}
    after = [n for n in acknowledged if n not in before_start]

    # change and delete: notes, attachments (their files)
    notes = list(at_backup)
    for note_id in notes[: len(notes) // 2]:
        assert api.delete(f"/api/notes/{note_id}").status_code == 204
    api.post("/api/notes", json={"title": "made after the backup"})

    flipped = bytearray(archive.read_bytes())
    flipped[4096] ^= 0x01
    bad = archive.with_name("damaged-copy.bin")
    bad.write_bytes(bytes(flipped))
    try:
        refused = stack.cli("restore", str(bad), "--yes", check=False)
    finally:
        bad.unlink()
    assert refused.returncode == 2 and "damaged" in refused.stderr, refused.stderr
    changed = content(api)

    stack.cli("restore", str(archive), "--yes", timeout=600)
    stack.wait_healthy()
    stack.wait_ready()
    with stack.client() as client:
        restored = content(client)
    assert set(before_start) <= set(restored)  # every write acknowledged before the backup started
    expected = {k: v for k, v in at_backup.items() if k not in after}
    assert {k: v for k, v in restored.items() if k not in after} == expected
    assert restored != changed
