"""The stored files under UPLOADS_DIR: writing an upload within a size limit, finding and deleting files.

Files get generated names (`stored_name`); the client's filename is cleaned for display and never used as a
path. Knows nothing of the database or of HTTP.
"""

import logging
import mimetypes
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.models import CONTENT_TYPE_MAX, FILENAME_MAX

CHUNK_SIZE = 64 * 1024
FALLBACK_CONTENT_TYPE = "application/octet-stream"
_STORED_NAME = re.compile(r"[0-9a-f]{32}")
# type "/" subtype [; parameters], in RFC 9110's token characters.
_CONTENT_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+( *;[ -~]*)?", re.ASCII)

log = logging.getLogger(__name__)


class UploadTooLarge(Exception):
    """The upload went over the limit; nothing of it was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than the limit of {limit} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int


def ensure_directory(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)


def check_writable(directory: Path) -> None:
    """Creates and deletes a temporary file in the folder (creating the folder first); raises OSError if not."""
    ensure_directory(directory)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".ready-"):
        pass


def store(source: BinaryIO, *, directory: Path, limit: int) -> StoredFile:
    """Copies `source` into the folder in chunks under a new name; over `limit` bytes it stops and deletes the file."""
    ensure_directory(directory)
    name = secrets.token_hex(16)
    path = directory / name
    size = 0
    try:
        with path.open("xb") as target:
            while chunk := source.read(CHUNK_SIZE):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(limit)
                target.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredFile(name=name, size=size)


def path_of(directory: Path, stored_name: str) -> Path:
    """The file's path; refuses any name this module did not generate."""
    if not _STORED_NAME.fullmatch(stored_name):
        raise ValueError(f"not a stored file name: {stored_name!r}")
    return directory / stored_name


def delete(directory: Path, stored_names: Iterable[str]) -> None:
    """Deletes the files, logging (not raising) what could not be deleted: the rows are already gone."""
    for stored_name in stored_names:
        try:
            path_of(directory, stored_name).unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            log.warning("Could not delete the stored file %s: %s", stored_name, exc)


def display_name(client_filename: str | None) -> str:
    """The client's filename without folders or control characters, cut to fit; `file` when nothing is left."""
    name = PurePosixPath((client_filename or "").replace("\\", "/")).name
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return "file"
    return name[:FILENAME_MAX]


def content_type_for(declared: str | None, filename: str) -> str:
    """The content type the client declared, else one guessed from the filename, else octet-stream."""
    declared = (declared or "").strip()
    usable = len(declared) <= CONTENT_TYPE_MAX and _CONTENT_TYPE.fullmatch(declared)
    if usable and declared.lower() != FALLBACK_CONTENT_TYPE:
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or FALLBACK_CONTENT_TYPE
