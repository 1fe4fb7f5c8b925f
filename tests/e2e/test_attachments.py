"""Attachments through the proxy: upload (multipart field `file`), download the same bytes with the right headers,
and the backend's 413 (with its JSON message) for a file over MAX_UPLOAD_BYTES."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def note(api: httpx.Client) -> Iterator[dict[str, Any]]:
    created = api.post("/api/notes", json={"title": "with attachments"})
    assert created.status_code == 201, created.text
    yield created.json()
    api.delete(f"/api/notes/{created.json()['id']}")


def upload(api: httpx.Client, note_id: int, filename: str, data: bytes, content_type: str) -> httpx.Response:
    return api.post(f"/api/notes/{note_id}/attachments", files={"file": (filename, data, content_type)})


@pytest.mark.parametrize(
    ("filename", "content_type", "data", "disposition"),
    [
        (
            "Straße plan.csv",
            "text/csv",
            b"item,qty\nmilk,2\n" * 5000,
            "attachment; filename=\"Stra_e plan.csv\"; filename*=UTF-8''Stra%C3%9Fe%20plan.csv",
        ),
        (
            "photo.png",
            "image/png",
            b"\x89PNG\r\n\x1a\n" + os.urandom(3 * 1024 * 1024),
            "attachment; filename=\"photo.png\"; filename*=UTF-8''photo.png",
        ),
    ],
    ids=["text-non-ascii-name", "binary-3mib"],
)
def test_upload_then_download_the_same_bytes(
    api: httpx.Client, note: dict[str, Any], filename: str, content_type: str, data: bytes, disposition: str
) -> None:
    response = upload(api, note["id"], filename, data, content_type)
    assert response.status_code == 201, response.text
    attachment = response.json()
    assert attachment == {"id": attachment["id"], "filename": filename, "size": len(data), "content_type": content_type}
    assert api.get(f"/api/notes/{note['id']}").json()["attachments"] == [attachment]

    download = api.get(f"/api/attachments/{attachment['id']}")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"].split(";")[0] == content_type
    assert download.headers["content-disposition"] == disposition
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["cache-control"] == "no-store"


def test_a_file_over_the_limit_gets_the_backends_413(api: httpx.Client, note: dict[str, Any]) -> None:
    limit = api.get("/api/info").json()["max_upload_bytes"]
    at_limit = upload(api, note["id"], "exactly.bin", b"\0" * limit, "application/octet-stream")
    assert at_limit.status_code == 201, at_limit.text
    assert at_limit.json()["size"] == limit

    over = upload(api, note["id"], "too-big.bin", b"\0" * (limit + 1), "application/octet-stream")
    assert over.status_code == 413
    assert over.headers["content-type"] == "application/json"
    assert over.json() == {"detail": f"The file is larger than the limit of {limit} bytes."}
    assert over.headers["cache-control"] == "no-store"
    assert [a["filename"] for a in api.get(f"/api/notes/{note['id']}").json()["attachments"]] == ["exactly.bin"]


def test_missing_attachment_and_note_are_404(api: httpx.Client) -> None:
    assert api.get("/api/attachments/99999999").json() == {"detail": "Attachment not found"}
    response = upload(api, 99999999, "x.txt", b"x", "text/plain")
    assert (response.status_code, response.json()) == (404, {"detail": "Note not found"})
