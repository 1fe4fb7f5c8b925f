"""A volume's tar written by GNU tar straight into the archive file (its stdout is the file: no pipe, no copy
through unistack) while unistack reads back what it wrote to hash it: the part's bytes, size and sha256 are those
of the same tar through a pipe; a tar that fails, or a backup that stops meanwhile, kills it and fails the part."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from unistack.errors import RuntimeFailure
from unistack.ops.archive import Manifest
from unistack.ops.archive_writer import ArchiveWriter, PartWriter
from unistack.runtimes.process_data import folder_out

MANIFEST = Manifest(
    format=1, project="p", environment="local", created="now", unistack_version="0", runtime="process", parts=()
)


class Straight:
    """A sink that is the archive's file, as the backup gives the part it streams (``direct``)."""

    def __init__(self, out: PartWriter, stop_after: int | None = None) -> None:
        self.out, self.stop_after = out, stop_after
        self.direct = self
        self.calls = 0

    @property
    def fd(self) -> int:
        return self.out.fd

    def __call__(self, chunk: memoryview) -> None:
        raise AssertionError("the bytes were to be written straight into the file")

    def written(self) -> int:
        self.calls += 1
        taken = self.out.written()
        if self.stop_after is not None and self.out.size >= self.stop_after:
            raise KeyboardInterrupt  # as an interrupt, or another part's failure, stops the backup
        return taken


def fill(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    for n in range(12):
        (folder / "sub" / f"f{n}").write_bytes(os.urandom(700_000))
    (folder / "small").write_text("hi")


def test_the_tar_written_straight_is_the_tar_through_a_pipe(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    fill(folder)
    piped = bytearray()
    folder_out(folder, piped.extend)  # no direct: through the pipe
    writer = ArchiveWriter(tmp_path / "a.tar")
    with writer.part("parts/files.tar") as out:
        sink = Straight(out)
        folder_out(folder, sink)
    writer.finish(MANIFEST)
    assert sink.calls >= 1 and out.size_and_hash() == (len(piped), hashlib.sha256(piped).hexdigest())
    with tarfile.open(tmp_path / "a.tar") as archive:
        assert [m.name for m in archive.getmembers()] == ["parts/files.tar", "manifest.json"]
        assert archive.extractfile("parts/files.tar").read() == bytes(piped)  # type: ignore[union-attr]


def test_a_failing_tar_fails_the_part_and_a_stopped_backup_kills_it(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path / "a.tar")
    with pytest.raises(RuntimeFailure, match="missing"), writer.part("parts/none.tar") as out:
        folder_out(tmp_path / "missing", Straight(out))
    writer.abort()
    folder = tmp_path / "files"
    fill(folder)
    writer = ArchiveWriter(tmp_path / "b.tar")
    with pytest.raises(KeyboardInterrupt), writer.part("parts/files.tar") as out:
        folder_out(folder, Straight(out, stop_after=1))
    writer.abort()
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob(".*"))
