"""What a custom-format ``pg_dump`` archive says of itself in its header: the version of the server it was dumped
from ("Dumped from database version" in ``pg_restore --list``). Read from the dump's first bytes while the backup
streams it, so the manifest's server version costs no query of its own beside the dump. Pure: bytes in, text out.

The header (PostgreSQL's ``ReadHead``, src/bin/pg_dump/pg_backup_archiver.c): ``PGDMP``, the archive version (major,
minor, revision: one byte each), the size of an integer and of an offset, the format; then the compression (archive
1.15 and later: one byte, the algorithm; 1.4 to 1.14: an integer), the creation time (seven integers), the
database's name, the server's version and pg_dump's (strings; 1.10 and later). An integer is a sign byte and
``intSize`` bytes, least significant first; a string is its length as an integer (-1: none), then its bytes.
"""

from __future__ import annotations

from unistack.runtimes.datastreams import Sink

MAGIC = b"PGDMP"
HEAD = 8192  # bytes of a dump enough for its header (the names in it are short)


class _Short(Exception):
    """The bytes end before the field."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0
        self.int_size = 4

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise _Short
        self.at += 1
        return self.data[self.at - 1]

    def bytes(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise _Short
        self.at += count
        return self.data[self.at - count : self.at]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def text(self) -> str | None:
        length = self.int()
        return None if length < 0 else self.bytes(length).decode("utf-8", "replace")


def server_version(head: bytes) -> str | None:
    """The version of the server a custom-format dump starting with ``head`` came from ("15.18 (Debian
    15.18-0+deb12u1)"); None when ``head`` is not such a dump's start, too short, or of an archive version before
    1.10 (which did not record it)."""
    if not head.startswith(MAGIC):
        return None
    reader = _Reader(head)
    reader.at = len(MAGIC)
    try:
        major, minor, revision = reader.byte(), reader.byte(), reader.byte()
        version = (major, minor, revision)
        reader.int_size = reader.byte()
        reader.byte()  # the size of an offset
        reader.byte()  # the format
        if version < (1, 10, 0) or not 1 <= reader.int_size <= 8:
            return None
        if version >= (1, 15, 0):
            reader.byte()  # the compression algorithm
        else:
            reader.int()  # the compression level
        for _ in range(7):  # the creation time: seconds, minutes, hours, day, month, year, daylight saving
            reader.int()
        reader.text()  # the database's name
        return reader.text()
    except _Short:
        return None


class HeadKept:
    """A sink in front of another that keeps the first ``HEAD`` bytes given to it (the dump's header)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.head = bytearray()

    def __call__(self, chunk: memoryview) -> object:
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]
        return self.sink(chunk)
