"""The daemon's watch on dependency manifests (``x-unistack.dependencies``): changed files -> the engine's follower.

Owns the file watcher (watchfiles: inotify on Linux, FSEvents on macOS) on the folders of the manifests, each
folder alone, not its subfolders (so an editor's save by rename is seen, and a big tree beside costs nothing),
its changes filtered down to the manifests and handed to ``engine.manifests.ManifestFollower``; watching again
when the set of folders changes, or after the watcher failed (a folder deleted and made again); and the content
digest the follower compares (``fingerprint``). Nothing of this is imported, and nothing runs, while no service
declares manifests. Never decides what a change means (the follower does).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from unistack.engine.events import Event
from unistack.engine.manifests import ManifestFollower

STEP_MS = 100  # how often the watcher thread looks for news (it wakes this often while idle, for a few µs)
DEBOUNCE_MS = 1600  # the longest a stream of changes is gathered before it is handed over
TIMEOUT_MS = 60_000  # the watcher thread returns to the event loop this rarely while nothing changes
RETRY_S = 2.0  # seconds before watching again after the watcher failed


def fingerprint(path: Path) -> str | None:
    """The digest of a file's content; None when it is missing or unreadable."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ManifestWatcher:
    """Feeds ``follower.changed`` from a watchfiles task; ``update`` after the project changed, ``close`` at the end."""

    def __init__(self, follower: ManifestFollower, on_event: Any) -> None:
        self.follower, self.on_event = follower, on_event
        self._paths: frozenset[Path] = frozenset()
        self._task: asyncio.Task[None] | None = None

    def update(self) -> None:
        """Watch what the follower follows now (nothing: the watcher stops)."""
        paths = frozenset(self.follower.follow())
        if paths == self._paths and self._task is not None and not self._task.done():
            return
        self._stop_task()
        self._paths = paths
        if paths:
            self._task = asyncio.get_running_loop().create_task(self._watch(paths), name="manifest-watcher")

    async def close(self) -> None:
        self._stop_task()
        self._paths = frozenset()
        await self.follower.close()

    def _stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self, paths: frozenset[Path]) -> None:
        import watchfiles

        def wanted(_change: Any, path: str) -> bool:
            return Path(path) in paths

        while True:
            folders = sorted({_existing_folder(path) for path in paths})
            try:
                async for changes in watchfiles.awatch(
                    *folders,
                    watch_filter=wanted,
                    recursive=False,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    rust_timeout=TIMEOUT_MS,
                ):
                    self.follower.changed(Path(path) for _, path in changes)
                return  # the watcher stopped by itself
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a watched folder went away, inotify limits, ...
                message = f"watching the dependency manifests failed ({exc}); watching again in {RETRY_S:g}s"
                self.on_event(Event("error", None, message, _now()))
                await asyncio.sleep(RETRY_S)


def _existing_folder(path: Path) -> Path:
    """The manifest's folder, or its nearest existing parent until the folder appears."""
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _now() -> float:
    import time

    return time.time()
