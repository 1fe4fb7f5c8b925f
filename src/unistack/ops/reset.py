"""``unistack reset``: what deleting all of an instance's persistent data means, listed with sizes (``plan``), and
deleting it once the instance is down (``delete``).

Deleted: the named volumes (host processes: ``volumes/``; containers: the instance's Docker volumes), everything
else the instance keeps in its state folder (the stack's ``frontend-dist/``, ``caddy/``, ``alerts.jsonl``, ports
and state files), and with ``logs`` its logs (``logs/``). Kept: ``backups/`` (archives exist to survive a reset),
the lock files, and bind mounts (the user's working tree). Never stops services (``commands/data.py`` has the
daemon take the instance down first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from unistack.config.model import Project

KEPT = frozenset({"backups", "lock", "daemon.lock"})
LOGS = "logs"


@dataclass(frozen=True)
class Doomed:
    what: str  # in words: "volume uploads (volumes/uploads)", "Docker volume stack_db"
    size: int | None
    path: Path | None = None  # a file or folder in the state folder
    docker_volume: str | None = None


def plan(project: Project, logs: bool, docker_volumes: dict[str, int | None] | None = None) -> list[Doomed]:
    """What a reset deletes. ``docker_volumes``: the instance's Docker volumes and their sizes (None: no engine)."""
    doomed = []
    state = project.state_dir
    volumes = state / "volumes"
    if volumes.is_dir():
        for entry in sorted(volumes.iterdir()):
            doomed.append(Doomed(f"volume {entry.name} (volumes/{entry.name})", folder_size(entry), entry))
    for name, size in sorted((docker_volumes or {}).items()):
        doomed.append(Doomed(f"Docker volume {name}", size, docker_volume=name))
    if state.is_dir():
        for entry in sorted(state.iterdir()):
            if entry.name in KEPT or entry.name == "volumes" or (entry.name == LOGS and not logs):
                continue
            kind = "logs" if entry.name == LOGS else "state"
            doomed.append(Doomed(f"{kind} {entry.name}", folder_size(entry), entry))
    return doomed


def delete(doomed: list[Doomed]) -> list[str]:
    """Delete the files and folders (the Docker volumes are the runtime's); returns what could not be deleted."""
    problems = []
    for item in doomed:
        if item.path is None or not os.path.lexists(item.path):
            continue
        try:
            if item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path)
            else:
                item.path.unlink()
        except OSError as exc:
            problems.append(f"cannot delete {item.path}: {exc.strerror or exc}")
    return problems


def folder_size(path: Path) -> int:
    """Bytes the files under ``path`` take (what ``du`` would count as apparent size)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total
