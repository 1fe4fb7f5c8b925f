"""The pure decisions of ``develop.watch``: what a batch of file changes asks for, when a batch is due, what to watch.

Owns the plan for one batch (``plan``, and ``initial_plan`` for ``initial_sync``): per service, the files to sync
into its container, a restart or a rebuild. For one service in one batch, rebuild wins over restart, which wins
over sync; for one container path the last matching rule wins, as in Compose. Also owns grouping changes until
they have been quiet for a moment (``Debouncer``), the folders to hand the file watcher (``watch_roots``) and the
entries of the tar a sync copies (``tar_entries``).

Pure: never reads the disk or the clock (callers pass a listing, ``is_dir`` and the time), never touches a
container or the daemon (``loop`` carries the plans out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from unistack.watch.rules import SYNCING, WatchRule

QUIET = 0.3  # seconds without a change before a batch is acted on
LONGEST = 2.0  # a batch never waits longer than this after its first change, even while changes keep coming


@dataclass(frozen=True)
class FileSync:
    """One path to bring into a container: copied from the host, or deleted there."""

    rule: WatchRule
    host: Path
    container: str
    deleted: bool


@dataclass(frozen=True)
class Plan:
    """What one batch of changes asks for, per service; a service is in at most one of rebuild and restart."""

    sync: Mapping[str, tuple[FileSync, ...]] = field(default_factory=dict)
    restart: tuple[str, ...] = ()
    rebuild: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sync or self.restart or self.rebuild)


def plan(rules: Sequence[WatchRule], changes: Mapping[Path, bool]) -> Plan:
    """The actions for a batch: ``changes`` maps each changed host path to whether it is gone now.

    Per service: a rebuild wins over everything else (the new image has the files); otherwise the files of its
    sync rules are copied (deletions under a deleted folder folded into it), then it is restarted when a
    restart rule matched. For one container path the last matching rule wins, as in Compose.
    """
    order = list(dict.fromkeys(rule.service for rule in rules))
    files: dict[str, dict[str, FileSync]] = {}
    restart: set[str] = set()
    rebuild: set[str] = set()
    for path, deleted in sorted(changes.items()):
        for rule in rules:
            if not rule.takes(path):
                continue
            if rule.action == "rebuild":
                rebuild.add(rule.service)
                continue
            if rule.action in ("sync+restart", "restart"):
                restart.add(rule.service)
            if rule.action in SYNCING:
                container = rule.container_path(path)
                files.setdefault(rule.service, {})[container] = FileSync(rule, path, container, deleted)
    sync: dict[str, tuple[FileSync, ...]] = {}
    for service in order:
        if service in rebuild or service not in files:
            continue
        chosen = files[service]
        gone = {c for c, f in chosen.items() if f.deleted}
        kept = [f for c, f in sorted(chosen.items()) if not any(str(p) in gone for p in PurePosixPath(c).parents)]
        sync[service] = tuple(kept)
    return Plan(
        sync=sync,
        restart=tuple(s for s in order if s in restart and s not in rebuild),
        rebuild=tuple(s for s in order if s in rebuild),
    )


def initial_plan(rules: Sequence[WatchRule], listing: Callable[[Path], Iterable[Path]]) -> Plan:
    """What ``initial_sync: true`` copies before watching starts: every file its rule takes (no restart)."""
    syncs = [replace(rule, action="sync") for rule in rules if rule.initial_sync]
    sync: dict[str, tuple[FileSync, ...]] = {}
    for rule in syncs:
        part = plan([rule], dict.fromkeys(listing(rule.path), False)).sync.get(rule.service, ())
        sync[rule.service] = (*sync.get(rule.service, ()), *part)
    return Plan(sync={s: f for s, f in sync.items() if f})


class Debouncer:
    """Collects changed paths until none came for ``quiet`` seconds, or ``longest`` seconds after the first.

    Pure: the caller passes the time (``time.monotonic()``, or a test's own numbers).
    """

    def __init__(self, quiet: float = QUIET, longest: float = LONGEST) -> None:
        self.quiet, self.longest = quiet, longest
        self._paths: dict[Path, None] = {}
        self._first = self._last = 0.0

    def add(self, paths: Iterable[Path], now: float) -> None:
        """Any change, even to a path already pending, restarts the quiet period."""
        fresh = list(paths)
        if not fresh:
            return
        if not self._paths:
            self._first = now
        self._paths.update(dict.fromkeys(fresh))
        self._last = now

    def wait(self, now: float) -> float | None:
        """Seconds until the batch is due (0: now); None when nothing is pending."""
        if not self._paths:
            return None
        return max(0.0, min(self._last + self.quiet, self._first + self.longest) - now)

    def take(self) -> list[Path]:
        paths = sorted(self._paths)
        self._paths.clear()
        return paths


@dataclass(frozen=True)
class Roots:
    """What to hand the file watcher: folders with their subfolders, and folders alone (for single files, whose
    folder is watched so that an editor's save by rename is seen)."""

    deep: tuple[Path, ...] = ()
    flat: tuple[Path, ...] = ()


def watch_roots(rules: Sequence[WatchRule], is_dir: Callable[[Path], bool]) -> Roots:
    deep: set[Path] = set()
    flat: set[Path] = set()
    for rule in rules:
        if is_dir(rule.path):
            deep.add(rule.path)
            continue
        folder = rule.path.parent  # a missing folder: its nearest existing parent, until it appears
        while not is_dir(folder) and folder != folder.parent:
            folder = folder.parent
        flat.add(folder)
    deep = {d for d in deep if not any(p in deep for p in d.parents)}
    flat = {f for f in flat if f not in deep and not any(p in deep for p in f.parents)}
    return Roots(tuple(sorted(deep)), tuple(sorted(flat)))


def tar_entries(files: Sequence[FileSync]) -> list[tuple[str, Path]]:
    """What to copy for the files of one sync: (container path, host path), parents first, with the folders
    between a rule's path and each file (so that a new folder belongs to the container's user too)."""
    entries: dict[str, Path] = {}
    for item in files:
        if item.deleted:
            continue
        for parent in item.host.parents:
            if parent == item.rule.path or item.rule.path not in parent.parents:
                break
            entries.setdefault(item.rule.container_path(parent), parent)
        entries[item.container] = item.host
    return sorted(entries.items())
