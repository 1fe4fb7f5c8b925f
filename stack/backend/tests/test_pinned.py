"""note.pinned (migration 0002): false by default, changed by PATCH only with a JSON boolean, and filled in for
notes that existed before the migration."""

import psycopg
from fastapi.testclient import TestClient

from conftest import alembic
from test_notes import create
from throwaway_postgres import ThrowawayPostgres


def test_a_new_note_is_not_pinned(client: TestClient) -> None:
    assert create(client)["pinned"] is False


def test_patch_pins_and_unpins(client: TestClient) -> None:
    note = create(client)
    pinned = client.patch(f"/api/notes/{note['id']}", json={"pinned": True}).json()
    assert (pinned["pinned"], pinned["title"], pinned["body"]) == (True, note["title"], note["body"])
    assert pinned["updated_at"] > note["updated_at"]
    assert client.get(f"/api/notes/{note['id']}").json()["pinned"] is True
    assert client.get("/api/notes").json()[0]["pinned"] is True
    assert client.patch(f"/api/notes/{note['id']}", json={"title": "renamed"}).json()["pinned"] is True
    assert client.patch(f"/api/notes/{note['id']}", json={"pinned": False}).json()["pinned"] is False


def test_pinned_takes_only_a_json_boolean(client: TestClient) -> None:
    note = create(client)
    for value in (None, "yes", "true", 1, 0):
        response = client.patch(f"/api/notes/{note['id']}", json={"pinned": value})
        assert response.status_code == 422, value
        assert response.json()["detail"][0]["loc"] == ["body", "pinned"]
    assert client.get(f"/api/notes/{note['id']}").json()["pinned"] is False


def test_the_list_stays_newest_first_whatever_is_pinned(client: TestClient) -> None:
    older, newer = create(client, title="older"), create(client, title="newer")
    client.patch(f"/api/notes/{older['id']}", json={"pinned": True})
    assert [note["id"] for note in client.get("/api/notes").json()] == [newer["id"], older["id"]]


def test_migration_fills_existing_notes_and_goes_back(
    client: TestClient, postgres: ThrowawayPostgres, database_url: str
) -> None:
    alembic(database_url, "downgrade", "0001")
    try:
        with psycopg.connect(postgres.conninfo("app")) as connection:
            columns = connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'note'"
            ).fetchall()
            assert ("pinned",) not in columns
            note_id = connection.execute(
                "INSERT INTO note (title, body) VALUES ('from 0001', '') RETURNING id"
            ).fetchone()
    finally:
        alembic(database_url, "upgrade", "head")
    assert note_id is not None
    assert client.get("/api/ready").json()["checks"]["migrations"] == {"ok": True, "detail": "at head 0002"}
    assert client.get(f"/api/notes/{note_id[0]}").json()["pinned"] is False
    with psycopg.connect(postgres.conninfo("app")) as connection:
        nullable, default = connection.execute(
            "SELECT is_nullable, column_default FROM information_schema.columns"
            " WHERE table_name = 'note' AND column_name = 'pinned'"
        ).fetchone() or ("?", "?")
    assert (nullable, default) == ("NO", "false")
