"""What a load reads from the disk, recorded while ``loadcache`` asks: each file read (its size and checksums)
and each path looked at (whether it was a file), so that a later command can tell a load would find the same.

Every read and every existence test of the loader goes through ``is_file``, ``read_text`` and ``resolved``
(``tests/unit/test_loadcache.py`` checks that no other call in ``config/`` touches the disk). Standard
library only: the read-only verbs' fast path imports it. Never caches, never decides.
"""

from __future__ import annotations

import os
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# (kind, path, what was found): ("file", path, True/False), ("read", path, "size:crc32:adler32"), ("resolved", ...)
Input = tuple[str, str, "str | bool"]
_recorded: list[Input] | None = None


def start() -> None:
    global _recorded
    _recorded = []


def stop() -> list[Input]:
    global _recorded
    recorded, _recorded = _recorded or [], None
    return recorded


def is_file(path: Path | str) -> bool:
    """``Path.is_file``: a regular file (symbolic links followed); any error is False."""
    found = os.path.isfile(path)
    if _recorded is not None:
        _recorded.append(("file", str(path), found))
    return found


def read_text(path: Path | str) -> str:
    """``Path.read_text(encoding="utf-8")``: decoded, universal newlines; the bytes' checksum recorded."""
    with open(path, "rb") as file:
        data = file.read()
    text = data.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _recorded is not None:
        _recorded.append(("read", str(path), checksum(data)))
    return text


def resolved(path: Path | str) -> str:
    """``os.path.realpath``, recorded (a symbolic link in the folder may point elsewhere later)."""
    real = os.path.realpath(path)
    if _recorded is not None:
        _recorded.append(("resolved", str(path), real))
    return real


def checksum(data: bytes) -> str:
    return f"{len(data)}:{zlib.crc32(data):08x}:{zlib.adler32(data):08x}"


def first_changed(recorded: list[Input]) -> str | None:
    """The first input not found as it was recorded, in words (None: all are as they were)."""
    for kind, path, found in recorded:
        if not isinstance(path, str):
            return f"an input's path is not text: {path!r}"
        if kind == "file":
            if os.path.isfile(path) is not found:
                return f"{path} is {'no longer' if found else 'now'} a file"
        elif kind == "read":
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except (OSError, ValueError) as exc:
                return f"{path} cannot be read ({exc})"
            if checksum(data) != found:
                return f"{path} changed"
        elif kind != "resolved":
            return f"an input of an unknown kind: {kind!r}"
        else:
            try:
                real = os.path.realpath(path)
            except (OSError, ValueError) as exc:
                return f"{path} cannot be resolved ({exc})"
            if real != found:
                return f"{path} resolves to another path"
    return None
