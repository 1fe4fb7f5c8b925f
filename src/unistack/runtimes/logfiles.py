"""Service log files of the host-process runtime: rotation, tail and follow.

Each child's output goes through its log writer (``logwriter.py``) into ``logs/<service>.log`` opened with
O_APPEND; neither depends on the supervisor, so they keep logging while it is replaced. Rotation is
copy-then-truncate (logrotate's ``copytruncate``), which an O_APPEND writer survives (a copy a full disk cuts
short is removed, nothing truncated). Following reopens a file that shrank (rotated) or appeared (first start), so
``logs -f`` follows a service across restarts and rotations.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
KEEP = 3
POLL = 0.2


def rotate_if_needed(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Rotate ``path`` to ``path.1`` (older ones shift up to ``keep``) once it is larger than ``max_bytes``."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    copy = path.with_name(f"{path.name}.1")
    try:
        shutil.copyfile(path, copy)
    except OSError:  # a full disk: no half copy left taking space, and nothing truncated
        copy.unlink(missing_ok=True)
        raise
    with path.open("r+b") as fh:
        fh.truncate(0)
    return True


def tail_lines(path: Path, lines: int, chunk: int = 64 * 1024) -> list[str]:
    """The last ``lines`` lines of ``path`` (and of its first rotated file when the current one is short)."""
    found: list[str] = []
    for candidate in (path, path.with_name(f"{path.name}.1")):
        try:
            with candidate.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - chunk))
                data = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        found = data.splitlines()[-(lines - len(found)) :] + found if lines > len(found) else found
        if len(found) >= lines:
            break
    return found[-lines:] if lines else []


@dataclass(frozen=True)
class LogLine:
    service: str
    text: str


class _Follower:
    def __init__(self, service: str, path: Path, start_at_end: bool) -> None:
        self.service, self.path = service, path
        self.offset = 0
        self.inode: int | None = None
        self.partial = b""
        if start_at_end:
            try:
                st = path.stat()
                self.offset, self.inode = st.st_size, st.st_ino
            except FileNotFoundError:
                pass

    def read(self) -> list[str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if self.inode != st.st_ino or st.st_size < self.offset:
            self.offset, self.inode, self.partial = 0, st.st_ino, b""
        if st.st_size == self.offset:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete]


async def follow(
    sources: Sequence[tuple[str, Path]], tail: int | None, follow: bool, stop: asyncio.Event | None = None
) -> AsyncIterator[LogLine]:
    """Yield the last ``tail`` lines (all when None) of each file, then, if ``follow``, new lines as they come."""
    for service, path in sources:
        if tail is None:
            lines = tail_lines(path, 10**9, chunk=1 << 62) if path.exists() else []
        else:
            lines = tail_lines(path, tail)
        for text in lines:
            yield LogLine(service, text)
    if not follow:
        return
    followers = [_Follower(service, path, start_at_end=True) for service, path in sources]
    while stop is None or not stop.is_set():
        got = False
        for f in followers:
            for text in f.read():
                got = True
                yield LogLine(f.service, text)
        if not got:
            await asyncio.sleep(POLL)
