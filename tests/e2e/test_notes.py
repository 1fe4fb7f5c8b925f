"""Notes through the proxy: create, list, get, patch, delete, and the validation errors."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_note_lifecycle(api: httpx.Client) -> None:
    title = f"e2e note {uuid.uuid4().hex[:8]}"
    created = api.post("/api/notes", json={"title": title, "body": "first body"})
    assert created.status_code == 201, created.text
    note = created.json()
    assert (note["title"], note["body"], note["attachments"], note["pinned"]) == (title, "first body", [], False)
    assert isinstance(note["id"], int)

    listed = api.get("/api/notes")
    assert listed.status_code == 200
    assert listed.json()[0] == note  # newest first
    assert note["id"] in [n["id"] for n in api.get("/api/notes", params={"limit": 1000}).json()]

    assert api.get(f"/api/notes/{note['id']}").json() == note

    patched = api.patch(f"/api/notes/{note['id']}", json={"body": "second body"})
    assert patched.status_code == 200, patched.text
    updated = patched.json()
    assert (updated["title"], updated["body"], updated["created_at"]) == (title, "second body", note["created_at"])
    assert updated["updated_at"] > note["updated_at"]
    assert api.get(f"/api/notes/{note['id']}").json() == updated

    deleted = api.delete(f"/api/notes/{note['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = api.get(f"/api/notes/{note['id']}")
    assert (gone.status_code, gone.json()) == (404, {"detail": "Note not found"})
    assert note["id"] not in [n["id"] for n in api.get("/api/notes", params={"limit": 1000}).json()]
    assert api.delete(f"/api/notes/{note['id']}").status_code == 404


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({"title": ""}, ["body", "title"]),
        ({"body": "no title"}, ["body", "title"]),
        ({"title": "x" * 201}, ["body", "title"]),
        ({"title": "ok", "colour": "red"}, ["body", "colour"]),
        ({"title": 42}, ["body", "title"]),
    ],
)
def test_create_validation_is_422(api: httpx.Client, payload: dict[str, object], location: list[str]) -> None:
    response = api.post("/api/notes", json=payload)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert location in [error["loc"] for error in response.json()["detail"]]


def test_update_validation_is_422(api: httpx.Client) -> None:
    note = api.post("/api/notes", json={"title": "to validate"}).json()
    try:
        for payload in ({"title": None}, {"title": ""}, {"pinned": "yes"}, {"id": 7}):
            response = api.patch(f"/api/notes/{note['id']}", json=payload)
            assert response.status_code == 422, (payload, response.text)
        assert api.get("/api/notes/not-a-number").status_code == 422
        broken = api.post("/api/notes", content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 422
        assert api.get(f"/api/notes/{note['id']}").json() == note  # nothing changed
    finally:
        api.delete(f"/api/notes/{note['id']}")
