"""The stored-file rules, without HTTP: names, content types, the size limit, Content-Disposition."""

import io
from pathlib import Path

import pytest

from app import uploads
from app.api.routes.attachments import content_disposition


def test_store_writes_under_a_generated_name(tmp_path: Path) -> None:
    stored = uploads.store(io.BytesIO(b"x" * 200_000), directory=tmp_path / "new", limit=200_000)
    assert stored.size == 200_000
    assert uploads.path_of(tmp_path / "new", stored.name).read_bytes() == b"x" * 200_000


def test_store_over_the_limit_keeps_nothing(tmp_path: Path) -> None:
    with pytest.raises(uploads.UploadTooLarge, match="limit of 100 bytes"):
        uploads.store(io.BytesIO(b"x" * 101), directory=tmp_path, limit=100)
    assert list(tmp_path.iterdir()) == []


def test_only_generated_names_are_paths(tmp_path: Path) -> None:
    for name in ("../etc/passwd", "/etc/passwd", "ABCDEF", ""):
        with pytest.raises(ValueError, match="not a stored file name"):
            uploads.path_of(tmp_path, name)


def test_delete_tolerates_missing_and_foreign_names(tmp_path: Path) -> None:
    stored = uploads.store(io.BytesIO(b"x"), directory=tmp_path, limit=10)
    uploads.delete(tmp_path, [stored.name, "0" * 32, "../escape"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("bad\x00name\n.txt", "badname.txt"),
        ("..", "file"),
        ("", "file"),
        (None, "file"),
        ("é" * 300, "é" * 255),
    ],
)
def test_display_name(given: str | None, shown: str) -> None:
    assert uploads.display_name(given) == shown


@pytest.mark.parametrize(
    ("declared", "filename", "expected"),
    [
        ("text/csv", "x.bin", "text/csv"),
        ("text/plain; charset=utf-8", "x", "text/plain; charset=utf-8"),
        ("application/octet-stream", "a.png", "image/png"),
        (None, "a.pdf", "application/pdf"),
        ("text/html\r\nX-Evil: 1", "a.txt", "text/plain"),
        ("nonsense", "a", "application/octet-stream"),
    ],
)
def test_content_type_for(declared: str | None, filename: str, expected: str) -> None:
    assert uploads.content_type_for(declared, filename) == expected


def test_content_disposition() -> None:
    assert content_disposition('a "b".txt') == "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
    assert content_disposition("日本.txt") == "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
