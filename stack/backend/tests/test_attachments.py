"""Uploads and downloads through the API: headers, storage under generated names, the size limit."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.core.config import Settings
from conftest import TEST_UPLOAD_LIMIT

TOO_LARGE = {"detail": f"The file is larger than the limit of {TEST_UPLOAD_LIMIT} bytes."}


def new_note(client: TestClient) -> int:
    note_id: int = client.post("/api/notes", json={"title": "with files"}).json()["id"]
    return note_id


def upload(
    client: TestClient, note_id: int, name: str, data: bytes, content_type: str | None = None
) -> tuple[int, Any]:
    file = (name, data, content_type) if content_type else (name, data)
    response = client.post(f"/api/notes/{note_id}/attachments", files={"file": file})
    return response.status_code, response.json()


def stored_files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.uploads_dir.iterdir() if not path.name.startswith("."))


def test_upload_then_download(client: TestClient, settings: Settings) -> None:
    note_id = new_note(client)
    status, attachment = upload(client, note_id, "report.csv", b"a,b\n1,2\n", "text/csv")
    assert status == 201
    assert set(attachment) == {"id", "filename", "size", "content_type"}
    assert (attachment["filename"], attachment["size"], attachment["content_type"]) == ("report.csv", 8, "text/csv")

    note = client.get(f"/api/notes/{note_id}").json()
    assert note["attachments"] == [attachment]
    assert note["updated_at"] > note["created_at"]

    response = client.get(f"/api/attachments/{attachment['id']}")
    assert response.status_code == 200
    assert response.content == b"a,b\n1,2\n"
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"report.csv\"; filename*=UTF-8''report.csv"
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_non_ascii_names_use_rfc_5987(client: TestClient) -> None:
    _, attachment = upload(client, new_note(client), "Größe café.txt", b"x")
    disposition = client.get(f"/api/attachments/{attachment['id']}").headers["content-disposition"]
    assert disposition == "attachment; filename=\"Gr__e caf_.txt\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe%20caf%C3%A9.txt"


def test_content_type_is_guessed_when_not_declared(client: TestClient) -> None:
    note_id = new_note(client)
    assert upload(client, note_id, "photo.png", b"\x89PNG", "application/octet-stream")[1]["content_type"] == (
        "image/png"
    )
    assert upload(client, note_id, "blob", b"\x00")[1]["content_type"] == "application/octet-stream"


def test_client_filename_is_never_a_path(client: TestClient, settings: Settings) -> None:
    _, attachment = upload(client, new_note(client), "../../etc/passwd", b"root")
    assert attachment["filename"] == "passwd"
    [stored] = stored_files(settings)
    assert stored.parent == settings.uploads_dir
    assert stored.read_bytes() == b"root"
    assert len(stored.name) == 32


def test_upload_at_the_limit_is_accepted(client: TestClient) -> None:
    status, attachment = upload(client, new_note(client), "full.bin", b"x" * TEST_UPLOAD_LIMIT)
    assert status == 201
    assert attachment["size"] == TEST_UPLOAD_LIMIT


def test_upload_over_the_limit_is_413_and_leaves_nothing(client: TestClient, settings: Settings) -> None:
    note_id = new_note(client)
    status, error = upload(client, note_id, "big.bin", b"x" * (TEST_UPLOAD_LIMIT + 1))
    assert (status, error) == (413, TOO_LARGE)
    assert stored_files(settings) == []
    assert client.get(f"/api/notes/{note_id}").json()["attachments"] == []


def test_body_far_over_the_limit_is_refused_before_parsing(client: TestClient, settings: Settings) -> None:
    files = {"file": ("huge.bin", b"x" * (TEST_UPLOAD_LIMIT * 4))}
    response = client.post(f"/api/notes/{new_note(client)}/attachments", files=files)
    assert (response.status_code, response.json()) == (413, TOO_LARGE)
    assert response.headers["cache-control"] == "no-store"
    assert stored_files(settings) == []


def test_streamed_body_over_the_limit_is_cut_off(client: TestClient, settings: Settings) -> None:
    """Without Content-Length the body is counted as it arrives."""

    def body() -> Iterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
        for _ in range(16):
            yield b"x" * (TEST_UPLOAD_LIMIT // 4)
        yield b"\r\n--B--\r\n"

    response = client.post(
        f"/api/notes/{new_note(client)}/attachments",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert "content-length" not in response.request.headers
    assert (response.status_code, response.json()) == (413, TOO_LARGE)
    assert stored_files(settings) == []


def test_upload_needs_a_file_and_a_note(client: TestClient) -> None:
    assert client.post(f"/api/notes/{new_note(client)}/attachments", data={"other": "x"}).status_code == 422
    status, error = upload(client, 999, "a.txt", b"a")
    assert (status, error) == (404, {"detail": "Note not found"})


def test_unknown_attachment_is_404_json(client: TestClient) -> None:
    response = client.get("/api/attachments/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "Attachment not found"}


def test_missing_file_is_404_json(client: TestClient, settings: Settings) -> None:
    _, attachment = upload(client, new_note(client), "gone.txt", b"x")
    for path in stored_files(settings):
        path.unlink()
    response = client.get(f"/api/attachments/{attachment['id']}")
    assert response.status_code == 404
    assert response.json() == {"detail": "The attachment's file is missing"}


def test_deleting_a_note_deletes_its_files(client: TestClient, settings: Settings) -> None:
    keep, drop = new_note(client), new_note(client)
    _, kept = upload(client, keep, "keep.txt", b"keep")
    _, dropped = upload(client, drop, "a.txt", b"a")
    upload(client, drop, "b.txt", b"b")
    assert len(stored_files(settings)) == 3

    assert client.delete(f"/api/notes/{drop}").status_code == 204
    assert [path.read_bytes() for path in stored_files(settings)] == [b"keep"]
    assert client.get(f"/api/attachments/{dropped['id']}").status_code == 404
    assert client.get(f"/api/attachments/{kept['id']}").content == b"keep"
