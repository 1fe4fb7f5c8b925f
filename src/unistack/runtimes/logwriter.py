"""Appending to a log that survives a full disk, and the per-service log writer process that uses it.

A host process's stdout and stderr are a pipe read by a writer of its own (``python -I -S logwriter.py
<service>.log``, started beside the service in a session of its own, its stdout the service's log file opened
O_APPEND). The writer copies what comes through the pipe into the file; what the disk refuses (ENOSPC, EDQUOT, EIO, ...)
is dropped and counted, never raised, so the service never sees a failed write: when space returns, one line
says how many lines were dropped and when, and logging goes on. The writer ends at the pipe's end of file (the
service and everything it started have exited or closed their output), so it needs no supervisor: it outlives
a killed daemon as the service does.

``Appender`` is the same rule for the daemon's own files (``events.jsonl``, ``daemon.log``, the Docker build
logs): whole writes or nothing (a write the disk cut short is cut back, so the file never ends in a torn line),
and a marker once writes succeed again. This module imports the standard library only: the writer runs with
``-I -S`` (about 10 ms and a few MB per service). It never decides anything about the service.
"""

from __future__ import annotations

import os
import sys
import time
from _collections_abc import Callable  # loaded by the interpreter's start already (collections.abc is not)

CHUNK = 64 * 1024


class Dropped:
    """What the disk refused since the last write that succeeded."""

    __slots__ = ("lines", "reason", "since", "size", "until")

    def __init__(self, since: float, reason: str) -> None:
        self.lines = self.size = 0
        self.since = self.until = since  # epoch seconds of the first refusal, and of the last
        self.reason = reason  # the error, as strerror says it

    def describe(self, what: str = "lines of output") -> str:
        return (
            f"{self.lines} {what} ({self.size} bytes) dropped between {_clock(self.since)} and "
            f"{_clock(self.until)}: {self.reason}"
        )


def text_marker(dropped: Dropped) -> bytes:
    return f"[unistack] {dropped.describe()}\n".encode()


class Appender:
    """Appends to a descriptor opened O_APPEND; a write the disk refuses is dropped and counted, never raised.

    ``marker`` makes the line written before the first write that succeeds after some were dropped. The counts
    of everything dropped over the appender's life stay in ``total_lines`` and ``total_bytes``.
    """

    def __init__(self, fd: int, marker: Callable[[Dropped], bytes] = text_marker) -> None:
        self.fd = fd
        self.marker = marker
        self.dropped: Dropped | None = None
        self.total_lines = self.total_bytes = 0
        self._line_start = True  # the last byte written ended a line

    def write(self, data: bytes) -> bool:
        """True when ``data`` is in the file; False when it was dropped (and counted)."""
        if not data:
            return True
        if self.dropped is not None and not self._flush_marker():
            self._count(data, self.dropped.reason)
            return False
        try:
            self._put(data)
        except OSError as exc:
            self._count(data, exc.strerror or str(exc))
            return False
        return True

    def finish(self) -> None:
        """The last chance to say what was dropped (at the end of the output)."""
        if self.dropped is not None:
            self._flush_marker()

    def _flush_marker(self) -> bool:
        assert self.dropped is not None
        text = self.marker(self.dropped)
        try:
            self._put(text if self._line_start else b"\n" + text)
        except OSError:
            return False
        self.dropped = None
        return True

    def _put(self, data: bytes) -> None:
        """Write all of ``data`` or none of it (a short write is cut back when nobody appended after it)."""
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            if done:
                self._cut_back(done)
            raise
        self._line_start = data.endswith(b"\n")

    def _cut_back(self, written: int) -> None:
        try:
            end = os.lseek(self.fd, 0, os.SEEK_CUR)  # O_APPEND: the offset is the end of our own write
            if os.fstat(self.fd).st_size == end:
                os.ftruncate(self.fd, end - written)
        except OSError:
            pass

    def _count(self, data: bytes, reason: str) -> None:
        lines = data.count(b"\n") or 1
        now = time.time()
        if self.dropped is None:
            self.dropped = Dropped(now, reason)
        self.dropped.lines += lines
        self.dropped.size += len(data)
        self.dropped.until, self.dropped.reason = now, reason
        self.total_lines += lines
        self.total_bytes += len(data)


class AppendStream:
    """A text stream over an ``Appender`` (the daemon's ``sys.stdout`` and ``sys.stderr``): ``print`` and
    tracebacks go on while the disk is full instead of raising from inside an error handler."""

    def __init__(self, appender: Appender) -> None:
        self.appender = appender

    def write(self, text: str) -> int:
        self.appender.write(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.appender.fd


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + "Z"


def copy(source: int, appender: Appender) -> None:
    """Copy ``source`` into ``appender`` until its end of file."""
    while True:
        try:
            data = os.read(source, CHUNK)
        except OSError:
            break
        if not data:
            break
        appender.write(data)
    appender.finish()


def main(argv: list[str]) -> int:
    """``logwriter.py <service>.log``: stdin (the service's output) onto stdout (its log file). The argument is
    for ``ps`` to show whose writer this is."""
    # no signal handlers (importing ``signal`` costs more than the rest): in a session of its own, no terminal's
    # signals reach it; it ends at the end of the service's output
    copy(0, Appender(1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
