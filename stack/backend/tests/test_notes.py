"""Notes CRUD and validation through the API."""

from typing import Any

from fastapi.testclient import TestClient


def create(client: TestClient, title: str = "Groceries", body: str = "milk") -> dict[str, Any]:
    response = client.post("/api/notes", json={"title": title, "body": body})
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    return note


def test_create_returns_the_note(client: TestClient) -> None:
    note = create(client)
    assert set(note) == {"id", "title", "body", "pinned", "created_at", "updated_at", "attachments"}
    assert (note["title"], note["body"], note["attachments"]) == ("Groceries", "milk", [])
    assert note["created_at"] == note["updated_at"]


def test_body_may_be_left_out(client: TestClient) -> None:
    response = client.post("/api/notes", json={"title": "Only a title"})
    assert response.status_code == 201
    assert response.json()["body"] == ""


def test_list_is_newest_first(client: TestClient) -> None:
    ids = [create(client, title=f"note {n}")["id"] for n in range(3)]
    listed = client.get("/api/notes").json()
    assert [note["id"] for note in listed] == ids[::-1]
    assert [note["id"] for note in client.get("/api/notes", params={"skip": 1, "limit": 1}).json()] == [ids[1]]


def test_read_one(client: TestClient) -> None:
    note = create(client)
    assert client.get(f"/api/notes/{note['id']}").json() == note


def test_patch_changes_only_what_is_sent(client: TestClient) -> None:
    note = create(client)
    response = client.patch(f"/api/notes/{note['id']}", json={"title": "Shopping"})
    assert response.status_code == 200
    updated = response.json()
    assert (updated["title"], updated["body"]) == ("Shopping", "milk")
    assert updated["created_at"] == note["created_at"]
    assert updated["updated_at"] > note["updated_at"]


def test_empty_patch_changes_nothing(client: TestClient) -> None:
    note = create(client)
    assert client.patch(f"/api/notes/{note['id']}", json={}).json() == note


def test_delete(client: TestClient) -> None:
    note = create(client)
    response = client.delete(f"/api/notes/{note['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/notes/{note['id']}").status_code == 404


def test_unknown_ids_are_404_json(client: TestClient) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, "/api/notes/999", json={"title": "x"} if method == "PATCH" else None)
        assert response.status_code == 404, method
        assert response.json() == {"detail": "Note not found"}


def test_validation_errors_are_422_with_locations(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"title": ""}, ["body", "title"]),
        ({"title": "x" * 201}, ["body", "title"]),
        ({"title": "ok", "body": "x" * 100_001}, ["body", "body"]),
        ({"body": "no title"}, ["body", "title"]),
        ({"title": "ok", "colour": "red"}, ["body", "colour"]),
    ]
    for payload, location in cases:
        response = client.post("/api/notes", json=payload)
        assert response.status_code == 422, payload
        assert [error["loc"] for error in response.json()["detail"]] == [location], payload


def test_limits_are_inclusive(client: TestClient) -> None:
    assert client.post("/api/notes", json={"title": "x" * 200, "body": "y" * 100_000}).status_code == 201


def test_patch_refuses_null_and_bad_values(client: TestClient) -> None:
    note = create(client)
    for payload in ({"title": None}, {"body": None}, {"title": ""}, {"id": 7}):
        assert client.patch(f"/api/notes/{note['id']}", json=payload).status_code == 422, payload
    assert client.get("/api/notes/not-a-number").status_code == 422


def test_api_responses_are_not_cached(client: TestClient) -> None:
    for response in (client.get("/api/notes"), client.get("/api/notes/999"), client.get("/api/health")):
        assert response.headers["cache-control"] == "no-store"


def test_openapi_is_served_under_api(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert "/api/notes/{note_id}/attachments" in schema["paths"]
    assert client.get("/api/docs").status_code == 200
