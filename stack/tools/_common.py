"""Small helpers shared by the stack's setup scripts (standard library only).

Every setup script prints short progress lines prefixed with its name; unistack appends them to the service's
log, where ``unistack logs -f SERVICE`` shows them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NoReturn

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def say(tool: str, message: str) -> None:
    print(f"[{tool}] {message}", flush=True)


def fail(tool: str, message: str, code: int = 1) -> NoReturn:
    print(f"[{tool}] error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def digest(parts: Iterable[bytes | str]) -> str:
    """sha256 over the parts, each length-prefixed so that ('ab', 'c') and ('a', 'bc') differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def file_bytes(path: Path) -> bytes:
    """The file's content, or a marker when it does not exist (so creating it changes the hash)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b"\0missing\0"


def read_stamp(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def write_stamp(path: Path, value: str) -> None:
    """Write atomically: a crash mid-write must never leave a stamp that claims an install happened."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def locked(path: Path, tool: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing).

    Two services may ensure the same folder at the same time (unistack runs setup steps in parallel), so the
    second one waits here and then finds the stamp up to date instead of running a second pip/npm beside the
    first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(tool, f"waiting for another setup that holds {path} ...")
            began = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            say(tool, f"got the lock after {time.monotonic() - began:.1f}s")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ca_bundle() -> str | None:
    """The CA bundle to hand to pip/npm: $SSL_CERT_FILE, else the system bundle, when it exists.

    On machines whose HTTPS goes through an intercepting proxy, that proxy's CA is only in the system bundle;
    pip (which uses certifi) and npm (which uses Node's own list) would otherwise fail with certificate errors.
    The system bundle also holds the public CAs, so handing it over is harmless elsewhere.
    """
    candidate = os.environ.get("SSL_CERT_FILE")
    if candidate and Path(candidate).is_file():
        return candidate
    return str(SYSTEM_CA_BUNDLE) if SYSTEM_CA_BUNDLE.is_file() else None
