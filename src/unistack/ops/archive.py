"""The backup archive: one tar file, its parts first (``parts/<service>.<kind>...``), ``manifest.json`` last.

Owns the format and reading it (writing: ``archive_writer.py``). Each part is a member of its own size; the manifest
goes last because only then are the sizes and checksums known: an archive without one is incomplete, and an archive with
its name is complete (written under a temporary name, fsynced, renamed). Reading verifies: the manifest, then each
part's size and sha256, before a restore touches anything. Any tar reads it (``tar -xOf ARCHIVE parts/db.postgres.pgdump
| pg_restore ...``). Never runs commands."""

from __future__ import annotations

import hashlib
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from unistack.errors import ArchiveRefused
from unistack.runtimes.datastreams import CHUNK, Source

FORMAT = 1
MANIFEST = "manifest.json"
BLOCK = 512
SUFFIX = ".tar"


class PartRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One part of an archive as its manifest lists it."""

    service: str
    kind: str  # postgres, volume, command
    member: str  # its path in the archive
    size: int
    sha256: str
    volume: str | None = None
    database: str | None = None
    server_version: str | None = None  # postgres: the server's version, e.g. "15.18"
    server_major: int | None = None


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    project: str  # the instance (-p NAME)
    environment: str
    created: str  # ISO 8601, UTC
    unistack_version: str
    runtime: str
    parts: tuple[PartRecord, ...]


class Archive:
    """An archive opened for reading: its manifest, each part's bytes; ``verify`` before using any."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise ArchiveRefused(f"{path} does not exist; `unistack backup list` shows the archives") from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _unreadable(path, exc) from None
        try:
            try:
                self.members = {m.name: m for m in self.tar.getmembers()}
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise _unreadable(path, exc) from None
            self.manifest = self._manifest()
        except BaseException:
            self.tar.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _manifest(self) -> Manifest:
        member = self.members.get(MANIFEST)
        incomplete = (
            f"{self.path} has no {MANIFEST}, which a backup writes last: the archive is incomplete (cut short) or "
            "not a unistack backup; use another one (`unistack backup list`)"
        )
        if member is None:
            raise ArchiveRefused(incomplete)
        stream = self.tar.extractfile(member)
        try:
            data = stream.read() if stream is not None else b""
            manifest = msgspec.json.decode(data, type=Manifest)
        except (msgspec.ValidationError, msgspec.DecodeError, tarfile.TarError, OSError) as exc:
            raise ArchiveRefused(
                f"{self.path}: its {MANIFEST} cannot be read ({exc}): the archive is damaged; use another one"
            ) from None
        if manifest.format > FORMAT:
            raise ArchiveRefused(
                f"{self.path} was written by a newer unistack ({manifest.unistack_version}, archive format "
                f"{manifest.format}); upgrade unistack to restore it"
            )
        return manifest

    def verify(self, on_bytes: Callable[[int], None] | None = None) -> None:
        """Every part there, with its size and sha256; ArchiveRefused naming the first that is not."""
        for part in self.manifest.parts:
            source = self.source(part, on_bytes)
            while source():
                pass

    def source(self, part: PartRecord, on_bytes: Callable[[int], None] | None = None) -> Source:
        """The part's bytes chunk by chunk; at its end its size and sha256 are checked again (ArchiveRefused)."""
        member = self.members.get(part.member)
        if member is None or not member.isfile():
            raise ArchiveRefused(
                f"{self.path} lacks {part.member} ({part.service}'s {part.kind}), which its manifest lists: the "
                "archive is damaged; use another one"
            )
        if member.size != part.size:
            raise self._damaged(part, f"{member.size} bytes where the manifest says {part.size}")
        stream = self.tar.extractfile(member)
        assert stream is not None
        digest = hashlib.sha256()
        seen = 0

        def read() -> bytes:
            nonlocal seen
            try:
                chunk = stream.read(CHUNK)
            except (OSError, tarfile.TarError, EOFError) as exc:
                raise self._damaged(part, f"cannot be read: {exc}") from None
            if chunk:
                digest.update(chunk)
                seen += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                return chunk
            if seen != part.size:
                raise self._damaged(part, f"ends after {seen} of {part.size} bytes")
            if digest.hexdigest() != part.sha256:
                raise self._damaged(part, "its sha256 differs from the manifest's")
            return b""

        return read

    def _damaged(self, part: PartRecord, what: str) -> ArchiveRefused:
        return ArchiveRefused(
            f"{self.path}: {part.member} ({part.service}'s {part.kind}): {what}. The archive is damaged (a copy cut "
            "short or a changed byte); nothing was changed. Use another archive (`unistack backup list`)"
        )

    def close(self) -> None:
        self.tar.close()


def _unreadable(path: Path, exc: BaseException) -> ArchiveRefused:
    return ArchiveRefused(
        f"{path} is incomplete or damaged ({exc}): a copy cut short, or not a unistack backup archive; nothing was "
        "changed. Use another one (`unistack backup list`)"
    )


def archive_name(project: str, when: float) -> str:
    return f"{project}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}{SUFFIX}"


def archives_in(folder: Path, project: str) -> list[Path]:
    """The archives of ``project`` in ``folder`` by their names, oldest first (names sort by time)."""
    pattern = re.compile(re.escape(project) + r"-\d{8}T\d{6}Z(-\d+)?" + re.escape(SUFFIX) + "$")
    try:
        found = [p for p in folder.iterdir() if pattern.match(p.name) and p.is_file()]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def read_manifest(path: Path) -> Manifest | None:
    """An archive's manifest without verifying its parts (None: not readable)."""
    try:
        with Archive(path) as archive:
            return archive.manifest
    except ArchiveRefused:
        return None
