"""An instance's state on disk: where things are, the state file, and the locks.

``<state_dir>/state.json`` (mode 0600) holds the project the daemon runs, the runtime, the environment ``up`` was
called with, and per service what ``adopt`` needs to find a live incarnation again. ``lock`` serialises
commands that change an instance; ``daemon.lock`` is held by the one live daemon for its whole life.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unistack import fingerprint
from unistack.control import wire
from unistack.errors import StateError

STATE_VERSION = 1
SOCKET_NAME = "daemon.sock"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


@functools.cache
def code_fingerprint() -> str:
    """Identifies the unistack code on disk, so a client can tell that a daemon runs older code (``fingerprint``:
    every file's path and stat, and the version)."""
    return fingerprint.compute()


def socket_path(state_dir: Path) -> Path:
    """The control socket: in ``run/`` when the path fits a unix socket address, else a short private path."""
    path = state_dir / "run" / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    import hashlib
    import tempfile

    digest = hashlib.sha1(os.fsencode(state_dir.resolve())).hexdigest()[:16]
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"unistack-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    return base / f"{digest}.sock"


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def daemon_log(state_dir: Path) -> Path:
    return state_dir / "logs" / "daemon.log"


def events_log(state_dir: Path) -> Path:
    return state_dir / "logs" / "events.jsonl"


def _read_json(path: Path) -> Any:
    """The file's JSON, or None when it does not exist; a damaged file is a StateError that says what to do."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path} cannot be read ({exc}); remove it to start afresh") from exc


def read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_file(state_dir)
    data = _read_json(path)
    if data is not None and (not isinstance(data, dict) or data.get("version") != STATE_VERSION):
        raise StateError(f"the state file {path} is from another unistack version; remove it to start afresh")
    return data


def ports_file(state_dir: Path) -> Path:
    """The host ports an earlier ``up`` chose for this instance (``ops.ports`` writes and reads it)."""
    return state_dir / "ports.json"


def project_file(state_dir: Path) -> Path:
    return state_dir / "project.json"


def _write_private(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename), readable by the owner only (it may hold secrets); a str is written
    as it is (JSON text already). A write that fails (StateError) leaves the previous file as it was."""
    tmp = path.with_suffix(".tmp")
    # json.dumps, not json.dump: dump streams through the pure-Python encoder (about 10x slower), and the daemon
    # writes the state file at every start and stop
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        tmp.replace(path)
    except OSError as exc:  # a full disk: the old file stays as it was, whole
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {path}: {exc.strerror or exc}; the previous {path.name} is kept") from exc


def write_state(state_dir: Path, data: dict[str, Any]) -> None:
    """The per-service records: small, rewritten at every start and stop."""
    _write_private(state_file(state_dir), {**data, "version": STATE_VERSION})


def write_project(state_dir: Path, project: dict[str, Any] | str) -> None:
    """The resolved project the daemon runs (data, or JSON text saved as it is): written once per ``up``."""
    _write_private(project_file(state_dir), project)


def read_project(state_dir: Path) -> dict[str, Any] | None:
    data = _read_json(project_file(state_dir))
    return data if isinstance(data, dict) else None


def remove_state(state_dir: Path) -> None:
    for path in (state_file(state_dir), project_file(state_dir)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, on_wait: Any = None, poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive flock on ``path``, waiting up to ``timeout`` seconds (TimeoutError after that).

    ``on_wait`` is called once when the lock is busy, so a caller can say what it is waiting for.
    """
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait()
                    told = True
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {timeout:g}s") from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def instance_lock(state_dir: Path, timeout: float = 600.0, on_wait: Any = None) -> Iterator[None]:
    """Hold the instance's command lock; wait for a racing command to finish first."""
    try:
        with file_lock(state_dir / "lock", timeout, on_wait):
            yield
    except TimeoutError:
        raise StateError(
            f"another unistack command has held {state_dir / 'lock'} for {timeout:g}s; wait for it or stop it"
        ) from None


def try_daemon_lock(state_dir: Path) -> int | None:
    """Take the daemon lock for the life of this process; None when another daemon holds it."""
    fd = _open_lock(state_dir / "daemon.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, False)
    return fd


def daemon_alive(state_dir: Path) -> bool:
    """True when some process holds the daemon lock."""
    return wire.lock_held(str(state_dir / "daemon.lock"))
