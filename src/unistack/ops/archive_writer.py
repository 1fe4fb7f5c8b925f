"""Writing a backup archive (the format: ``archive.py``). A part streamed in as it is produced: its header is written
with size 0, the bytes follow (sha256 and size counted on the way: given chunk by chunk, or written straight into
the file by a command and read back from the page cache, ``PartWriter.written``), then the header is written again
with the real size (the file is seekable; a GNU header has the same length whatever the size); a part taken at the
same time as the streamed one is spooled (memory, then an unnamed file beside the archive) and appended after it by
the kernel's copy; the manifest last. The disk writes are started as the file grows (``Writeback``); the file is
written under a temporary name (``.<name>.partial``), fsynced, then renamed, and its folder fsynced: a backup that
did not finish never has an archive's name. Never runs commands, never reads an archive."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from unistack.errors import StateError
from unistack.ops.archive import BLOCK, MANIFEST, Manifest
from unistack.runtimes.datastreams import CHUNK

SPOOL_MEMORY = 64 << 20  # a part taken beside another is kept in memory up to this, then in a file
WRITEBACK = 8 << 20  # the disk writes of the archive's bytes are started every this many bytes, not at its fsync
SYNC_FILE_RANGE_WRITE = 2  # Linux: start writing the range's dirty pages, without waiting


class Writeback:
    """Has the kernel start writing the archive's bytes to disk as they come (``sync_file_range`` with
    ``SYNC_FILE_RANGE_WRITE`` every ``WRITEBACK`` bytes: it does not wait), so the fsync at the end finds little
    left to write: with 200 MB the fsync alone took 0.14-0.4 s here, as long as the uploads' tar. Nothing where
    the call does not exist (not Linux): the fsync then writes it all."""

    _found: Callable[[int, int, int, int], int] | None = None
    _looked = False

    def __init__(self, fd: int, call: Callable[[int, int, int, int], int] | None = None) -> None:
        self.fd, self.started, self.call = fd, 0, call

    def __call__(self, end: int) -> None:
        """The archive's bytes up to ``end`` are written (into the page cache)."""
        if end - self.started < WRITEBACK:
            return
        call = self.call or self._sync_file_range()
        if call is not None:
            call(self.fd, self.started, end - self.started, SYNC_FILE_RANGE_WRITE)  # an error: the fsync reports it
        self.started = end

    @classmethod
    def _sync_file_range(cls) -> Callable[[int, int, int, int], int] | None:
        if not cls._looked:
            cls._looked = True
            try:
                import ctypes

                call = ctypes.CDLL(None, use_errno=True).sync_file_range
                call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
                call.restype = ctypes.c_int
                cls._found = call
            except (OSError, AttributeError, ImportError):
                cls._found = None
        return cls._found


class PartWriter:
    """The bytes of one part streamed straight into the archive: counted, hashed and written as each chunk comes,
    in the producer's thread. (A writer thread beside the producer was slower: on 2 busy cores, 200 MB of uploads
    took 0.47 s against 0.40 s serially; bench/backup.py.)"""

    def __init__(self, fd: int, start: int = 0, writeback: Callable[[int], None] | None = None) -> None:
        self.fd, self.start = fd, start
        self.size = 0
        self.hash = hashlib.sha256()
        self.writeback = writeback or (lambda end: None)
        self._buffer: bytearray | None = None

    def __call__(self, chunk: memoryview) -> None:
        self.hash.update(chunk)  # both release the GIL for large chunks
        _write_all(self.fd, chunk)
        self.size += len(chunk)
        self.writeback(self.start + self.size)

    def written(self) -> int:
        """Take the bytes a command wrote straight into the archive (its stdout: ``fd``) since the last call: read
        back from the page cache they were just written to, counted and hashed; how many. (The part is the last
        thing in the file while it streams, so they are all from its start to the file's end.)"""
        if self._buffer is None:
            self._buffer = bytearray(CHUNK)
        view = memoryview(self._buffer)
        end = os.fstat(self.fd).st_size
        taken = 0
        try:
            while self.start + self.size < end:
                read = os.preadv(self.fd, [view[: min(CHUNK, end - self.start - self.size)]], self.start + self.size)
                if not read:
                    break
                self.hash.update(view[:read])
                self.size += read
                taken += read
        except OSError as exc:
            raise StateError(f"cannot read back the backup archive: {exc.strerror or exc}") from exc
        self.writeback(self.start + self.size)
        return taken

    def size_and_hash(self) -> tuple[int, str]:
        return self.size, self.hash.hexdigest()


class Cancelled(Exception):
    """The backup stopped (another part failed, or an interrupt): a spooling producer stops too."""


class Spool:
    """The bytes of a part taken while another one streams into the archive: counted and hashed as they come, kept
    in memory up to ``SPOOL_MEMORY``, beyond that in an unnamed temporary file in the archive's folder (the same
    file system, so the copy into the archive is the kernel's, ``copy_file_range``). ``cancel`` makes the next
    chunk raise ``Cancelled``, which stops its producer."""

    def __init__(self, folder: Path, memory: int = SPOOL_MEMORY) -> None:
        self.folder, self.limit = folder, memory
        self.size = 0
        self.hash = hashlib.sha256()
        self.memory = bytearray()
        self.file: IO[bytes] | None = None
        self.cancelled = False

    def __call__(self, chunk: memoryview) -> None:
        if self.cancelled:
            raise Cancelled("the backup stopped")
        self.hash.update(chunk)
        if self.file is None and len(self.memory) + len(chunk) <= self.limit:
            self.memory += chunk
        else:
            if self.file is None:
                try:
                    self.file = tempfile.TemporaryFile(dir=self.folder, prefix=".unistack-spool-")  # noqa: SIM115 - close()
                except OSError as exc:
                    raise StateError(f"cannot spool a backup part in {self.folder}: {exc.strerror or exc}") from exc
                self.file.write(self.memory)
                self.memory = bytearray()
            self.file.write(chunk)
        self.size += len(chunk)

    def size_and_hash(self) -> tuple[int, str]:
        return self.size, self.hash.hexdigest()

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class ArchiveWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.temp = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # unbuffered: the parts come in large chunks, and a spool is copied in by the kernel at the file's offset
            # read too: what a command wrote straight into it is read back to be hashed (``PartWriter.written``)
            self.fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write the backup archive {self.temp}: {exc.strerror or exc}") from exc
        self.closed = False
        self.writeback = Writeback(self.fd)

    def spool(self, memory: int = SPOOL_MEMORY) -> Spool:
        return Spool(self.path.parent, memory)

    @contextlib.contextmanager
    def part(self, member: str) -> Iterator[PartWriter]:
        """A part streamed in: its header written with size 0, the bytes, then the header again with the size."""
        start = os.lseek(self.fd, 0, os.SEEK_CUR)
        header = _header(member, 0)
        _write_all(self.fd, header)
        writer = PartWriter(self.fd, start + len(header), self.writeback)
        yield writer
        os.lseek(self.fd, writer.start + writer.size, os.SEEK_SET)  # after what was taken, however it was written
        _write_all(self.fd, b"\0" * (-writer.size % BLOCK))
        final = _header(member, writer.size)
        assert len(final) == len(header), member
        os.pwrite(self.fd, final, start)

    def append(self, member: str, spool: Spool) -> None:
        """A spooled part: its header (the size is known), then its bytes."""
        _write_all(self.fd, _header(member, spool.size))
        if spool.file is None:
            _write_all(self.fd, memoryview(spool.memory))
        else:
            spool.file.flush()
            _copy(spool.file.fileno(), self.fd, spool.size)
        _write_all(self.fd, b"\0" * (-spool.size % BLOCK))
        self.writeback(os.lseek(self.fd, 0, os.SEEK_CUR))

    def finish(self, manifest: Manifest) -> Path:
        data = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
        _write_all(self.fd, _header(MANIFEST, len(data)))
        _write_all(self.fd, data + b"\0" * (-len(data) % BLOCK))
        _write_all(self.fd, b"\0" * (2 * BLOCK))  # the end of the archive
        try:
            os.fsync(self.fd)
            self.closed = True
            os.close(self.fd)
            self.temp.rename(self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            self.abort()
            raise StateError(f"cannot finish the backup archive {self.path}: {exc.strerror or exc}") from exc
        return self.path

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)
        with contextlib.suppress(OSError):
            self.temp.unlink()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise StateError(f"cannot write the backup archive: {exc.strerror or exc}") from exc


def _copy(source: int, target: int, size: int) -> None:
    """``size`` bytes of ``source`` from its start to ``target`` at its offset, in the kernel where it can."""
    offset = 0
    try:
        while offset < size:
            try:
                copied = os.copy_file_range(source, target, size - offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                copied = 0
            if copied == 0:  # not supported here: through a buffer
                break
            offset += copied
        while offset < size:
            chunk = os.pread(source, min(CHUNK, size - offset), offset)
            if not chunk:
                raise StateError("a spooled backup part ended early")
            _write_all(target, chunk)
            offset += len(chunk)
    except OSError as exc:
        raise StateError(f"cannot write the backup archive: {exc.strerror or exc}") from exc


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o600, int(time.time()), tarfile.REGTYPE
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
