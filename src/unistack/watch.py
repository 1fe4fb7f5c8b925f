"""Compose's ``develop.watch`` for an instance that runs on Docker: turn file changes into actions on containers.

Owns reading the watch rules of the selected services (``path`` resolved against the project folder, the
``.dockerignore`` of the build context, the rule's ``ignore``/``include`` patterns, editors' temporary files and
``.git`` left out, sync rules under a bind mount skipped as Compose skips them), grouping changes until they
have been quiet for a moment, the pure plan for one batch, and carrying it out:

- ``sync``: the files are copied into the service's container (``put_archive``, a tar whose entries belong to
  the container's user) and deleted files removed in it (``rm -rf`` through exec);
- ``sync+restart`` (and ``restart``): the same, then the daemon restarts the service (same container);
- ``rebuild``: ``runtimes.images`` builds the image, then the daemon restarts the service, which recreates its
  container from the new image. For one service in one batch, rebuild wins over restart, which wins over sync.

Never decides anything about a service's life (the daemon's engine does) and never prints (``say`` does).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

from docker.utils.build import Pattern

from unistack import graph
from unistack.config.model import Project
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.errors import ConfigError, NotSupported, Problem, RuntimeFailure, UnistackError, UsageError

Action = Literal["sync", "sync+restart", "restart", "rebuild"]
ACTIONS: tuple[Action, ...] = ("sync", "sync+restart", "restart", "rebuild")
SYNCING: frozenset[str] = frozenset({"sync", "sync+restart"})
RULE_KEYS = frozenset({"action", "path", "target", "ignore", "include", "initial_sync", "exec"})

QUIET = 0.3  # seconds without a change before a batch is acted on
LONGEST = 2.0  # a batch never waits longer than this after its first change, even while changes keep coming
RESTART_WAIT = 120.0  # seconds a restarted or recreated service gets to run again before we say it did not
EDITOR_FILES = ("*___jb_old___", "*___jb_tmp___", ".#*", "4913", "*~", ".*.swp", ".*.swx", ".*.swo", ".*.swn")
RUNNING_STATES = frozenset({"starting", "running", "healthy", "unhealthy"})

PROCESS_MODE = (
    "develop.watch applies to containers; host processes already run your sources — the backend reloads and "
    "Vite serves changes"
)

# --------------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Patterns:
    """``.dockerignore``-style patterns rooted at a folder, matched as Compose matches them: a path is taken when
    it or one of its parent folders matches, and the last matching pattern decides (``!`` takes back)."""

    root: Path
    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def parse(cls, root: Path, lines: Iterable[str]) -> Patterns:
        kept = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if "*" in kept:  # as Compose: a bare "*" would hide every watched path; only its exceptions count
            kept = [line for line in kept if line.startswith("!")]
        return cls(root, tuple(p for p in (Pattern(line) for line in kept) if p.dirs))

    def matches(self, path: Path) -> bool:
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return False
        prefixes = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
        matched = False
        for pattern in self.patterns:
            if any(pattern.match(prefix) for prefix in prefixes):
                matched = not pattern.exclusion
        return matched


EDITOR_PATTERNS = tuple(Pattern(p) for p in EDITOR_FILES)


@dataclass(frozen=True)
class WatchRule:
    """One entry of a service's ``develop.watch``, with its paths resolved."""

    service: str
    action: Action
    path: Path  # absolute, on the host
    target: str | None = None  # absolute, in the container (sync actions)
    ignore: Patterns | None = None  # rooted at ``path``
    include: Patterns | None = None  # rooted at ``path``; None: everything
    dockerignore: Patterns | None = None  # the build context's, rooted at the context
    initial_sync: bool = False

    def takes(self, path: Path) -> bool:
        """Whether a change to ``path`` concerns this rule (under its path and not ignored)."""
        if path != self.path and self.path not in path.parents:
            return False
        rel = path.relative_to(self.path).parts
        if ".git" in rel or ".idea" in rel or (rel and any(p.match(rel[-1]) for p in EDITOR_PATTERNS)):
            return False
        if self.include is not None and not self.include.matches(path):
            return False
        return not any(p is not None and p.matches(path) for p in (self.ignore, self.dockerignore))

    def container_path(self, path: Path) -> str:
        rel = path.relative_to(self.path).as_posix()
        target = PurePosixPath(self.target or "/")
        return str(target if rel == "." else target / rel)


def load_rules(project: Project, services: Sequence[str] = ()) -> tuple[list[WatchRule], list[str]]:
    """The watch rules of ``services`` and what they depend on (every service when none is named), and warnings
    for rules that are skipped. Raises ConfigError listing every malformed rule."""
    deps = {name: list(svc.depends_on) for name, svc in project.services.items()}
    chosen = graph.closure(deps, services) if services else set(deps)
    rules: list[WatchRule] = []
    warnings: list[str] = []
    problems: list[Problem] = []
    file = project.files[0] if project.files else None
    for name, service in project.services.items():
        develop = service.spec.get("develop")
        if name not in chosen or develop is None:
            continue
        entries = develop.get("watch") if isinstance(develop, Mapping) else None
        if not isinstance(entries, list):
            problems.append(Problem("develop.watch must be a list of rules.", file, key=f"services.{name}.develop"))
            continue
        build = service.spec.get("build")
        ignored = _dockerignore(project, build) if isinstance(build, Mapping) else None
        binds = [
            _absolute(project, str(v["source"]))
            for v in service.spec.get("volumes") or []
            if isinstance(v, Mapping) and v.get("type") == "bind" and v.get("source")
        ]
        for index, raw in enumerate(entries):
            rule, messages = _rule(project, name, raw, ignored, isinstance(build, Mapping))
            key = f"services.{name}.develop.watch[{index}]"
            problems.extend(Problem(message, file, key=key) for message in messages)
            if rule is None:
                continue
            if rule.action in SYNCING and any(rule.path == b or b in rule.path.parents for b in binds):
                warnings.append(
                    f"{name}: {_shown(project, rule.path)} is bind-mounted into the container, which sees your "
                    f"changes already; its {rule.action} rule is skipped"
                )
                continue
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return rules, warnings


def _rule(
    project: Project, service: str, raw: Any, dockerignore: Patterns | None, has_build: bool
) -> tuple[WatchRule | None, list[str]]:
    """One rule, or the sentences that say what is wrong with it."""
    if not isinstance(raw, Mapping):
        return None, ["a watch rule must be a mapping with action and path."]
    problems = [
        f"unknown key {key!r}; a watch rule has {', '.join(sorted(RULE_KEYS))}."
        for key in sorted(str(k) for k in raw)
        if key not in RULE_KEYS and not key.startswith("x-")
    ]
    action, path, target = raw.get("action"), raw.get("path"), raw.get("target")
    if action == "sync+exec":
        problems.append("action sync+exec is not supported by unistack watch; use sync+restart.")
    elif action not in ACTIONS:
        problems.append(f"action {action!r} is not one of {', '.join(ACTIONS)}.")
    elif action in SYNCING and (not isinstance(target, str) or not target.startswith("/")):
        problems.append(f"{action} needs a target: the absolute path in the container that path is copied to.")
    elif action == "rebuild" and not has_build:
        problems.append(f"service {service!r} has no build section, so rebuild cannot build its image; add one.")
    if not isinstance(path, str) or not path:
        problems.append("path is missing: the host file or folder to watch, relative to the compose file.")
    for name in ("ignore", "include"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            problems.append(f"{name} must be a list of patterns (relative to path).")
    if problems:
        return None, problems
    where = _absolute(project, str(path))
    include = raw.get("include")
    return WatchRule(
        service=service,
        action=cast(Action, action),
        path=where,
        target=str(target) if action in SYNCING else None,
        ignore=Patterns.parse(where, raw.get("ignore") or []),
        include=None if include is None else Patterns.parse(where, include),
        dockerignore=dockerignore,
        initial_sync=bool(raw.get("initial_sync")) and action in SYNCING,
    ), []


def _absolute(project: Project, path: str) -> Path:
    return Path(os.path.normpath(project.working_dir / Path(path).expanduser()))


def _shown(project: Project, path: Path) -> str:
    with contextlib.suppress(ValueError):
        return "./" + path.relative_to(project.working_dir).as_posix()
    return str(path)


def _dockerignore(project: Project, build: Mapping[str, Any]) -> Patterns:
    """The context's ``<Dockerfile>.dockerignore``, else its ``.dockerignore`` (as Compose reads them)."""
    context = _absolute(project, str(build.get("context") or "."))
    dockerfile = str(build.get("dockerfile") or "Dockerfile")
    for path in (context / f"{dockerfile}.dockerignore", context / ".dockerignore"):
        text = _read_text(path)
        if text is not None:
            return Patterns.parse(context, text.splitlines())
    return Patterns(context)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


# --------------------------------------------------------------------------------------------------- planning


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


# --------------------------------------------------------------------------------------------------- carrying out


def run(project: Project, services: Sequence[str], runtime_name: str, say: Callable[[str], None]) -> None:
    """``unistack watch``: act on changes until Ctrl+C or until the instance goes down."""
    if runtime_name != "docker":
        raise NotSupported(f"{project.name} uses the process runtime: {PROCESS_MODE}")
    if daemon_client.existing(project.state_dir) is None:
        raise UsageError(f"{project.name} is not up; run `unistack up -d` first, then `unistack watch`")
    rules, warnings = load_rules(project, services)
    for warning in warnings:
        say(warning)
    if not rules:
        raise UsageError(
            "none of the selected services has a develop.watch rule to follow (see stack/README.md, "
            "Development in containers)"
        )
    from unistack.runtimes import docker_client

    docker = docker_client(timeout=600)  # a build step may print nothing for minutes
    try:
        _Session(project, rules, docker, say).watch()
    finally:
        docker.close()


class _Session:
    def __init__(self, project: Project, rules: list[WatchRule], docker: Any, say: Callable[[str], None]) -> None:
        self.project, self.rules, self.docker, self.say = project, rules, docker, say
        self.events: queue.Queue[list[Path] | BaseException] = queue.Queue()
        self.sources = _Sources(self.events, lambda path: any(rule.takes(path) for rule in self.rules))
        self.owners: dict[str, tuple[int, int]] = {}

    def watch(self) -> None:
        debouncer = Debouncer()
        self.sources.start(watch_roots(self.rules, Path.is_dir))
        for rule in self.rules:
            where = f" -> {rule.target}" if rule.target else ""
            self.say(f"{rule.service}: {rule.action} {_shown(self.project, rule.path)}{where}")
        self.say(f"watching {len(self.rules)} paths; press Ctrl+C to stop")
        next_check = time.monotonic()
        failures = 0
        try:
            self.apply(initial_plan(self.rules, _files_under))
            while True:
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 2.0
                    if not (state.read_state(self.project.state_dir) or {}).get("up"):
                        self.say(f"{self.project.name} is down; stopped watching")
                        return
                pending = debouncer.wait(now)
                try:
                    item = self.events.get(timeout=min(2.0, 2.0 if pending is None else pending))
                except queue.Empty:
                    item = None
                if isinstance(item, BaseException):
                    failures += 1
                    if failures >= 3:
                        raise RuntimeFailure(f"the file watcher keeps failing: {item}")
                    self.say(f"the file watcher stopped ({item}); starting it again")
                    time.sleep(1.0)
                    self.sources.start(watch_roots(self.rules, Path.is_dir))
                elif item:
                    failures = 0
                    debouncer.add(item, time.monotonic())
                if debouncer.wait(time.monotonic()) == 0:
                    self.apply(plan(self.rules, _on_disk(debouncer.take())))
                    roots = watch_roots(self.rules, Path.is_dir)
                    if roots != self.sources.roots:  # a watched folder appeared or went away
                        self.sources.start(roots)
        except KeyboardInterrupt:
            self.say("stopped watching")
        finally:
            self.sources.stop()

    def apply(self, actions: Plan) -> None:
        """Carry out one plan; a failure is reported and watching goes on (the next save may fix it)."""
        if actions.rebuild:
            self._guarded("rebuild", lambda: self._rebuild(actions.rebuild))
        for service, files in actions.sync.items():
            self._guarded(f"sync {service}", functools.partial(self._sync, service, files))
        if actions.restart:
            self._guarded("restart", lambda: self._restart(actions.restart))

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except UnistackError as exc:
            self.say(f"could not {what}: {exc}")

    # ---------------------------------------------------------------- sync

    def _sync(self, service: str, files: Sequence[FileSync]) -> None:
        from unistack.runtimes import docker_copy
        from unistack.runtimes.docker_logs import find_container

        row = find_container(self.docker, self.project, service)
        if row is None:
            self.say(f"{service} has no container yet; {len(files)} changed files not synced")
            return
        container, running = str(row["Id"]), row.get("State") == "running"
        deleted = [f.container for f in files if f.deleted] if running else []
        if deleted:
            docker_copy.delete_in(self.docker, container, deleted)
        copied = [f for f in files if not f.deleted]
        if copied:
            docker_copy.copy_into(self.docker, container, tar_entries(copied), self._owner(container))
        count = sum(not f.host.is_dir() for f in copied) + len(deleted)  # folders come with their files
        detail = f" ({len(deleted)} deleted)" if deleted else ""
        if len(deleted) < len(files) - len(copied):
            detail = f" (deletions are left until it runs: {service} is {row.get('State')})"
        self.say(f"synced {count} file{'' if count == 1 else 's'} to {service}{detail}")

    def _owner(self, container: str) -> tuple[int, int]:
        """Who owns synced files: the container's user (root when it runs as root)."""
        from unistack.runtimes import docker_copy

        if container not in self.owners:
            user, owner = docker_copy.container_owner(self.docker, container)
            if owner is None:
                self.say(f"the container's user {user!r} is not in its /etc/passwd; synced files belong to root")
            self.owners[container] = owner or (0, 0)
        return self.owners[container]

    # ---------------------------------------------------------------- restart and rebuild

    def _restart(self, services: Sequence[str]) -> None:
        rows = self._ps()
        running = [s for s in services if rows.get(s, {}).get("state") in RUNNING_STATES]
        for service in services:
            if service not in running:
                self.say(f"{service} is not running; not restarted")
        if running:
            after = self._restart_and_wait(running, rows)
            for service in running:
                if service not in after:
                    self.say(f"restarted {service}, which is not running now (see `unistack logs {service}`)")
                elif after[service].get("container") != rows[service].get("container"):
                    self.say(f"restarted {service} in a new container (its image or configuration changed)")
                else:
                    self.say(f"restarted {service}")

    def _rebuild(self, services: Sequence[str]) -> None:
        from unistack.runtimes import images

        for build in images.plans(self.project, services):
            wanted = [s for s in build.services if s in services]
            self.say(f"rebuilding {build.image} for {', '.join(wanted)}")
            result = images.build(self.docker, build, functools.partial(self._build_line, build.image))
            if not result.built:
                self.say(f"{build.image} is up to date; {', '.join(wanted)} left as they are")
                continue
            rows = self._ps()
            running = [s for s in wanted if rows.get(s, {}).get("state") in RUNNING_STATES]
            told = f"rebuilt {build.image}"
            if running:
                after = self._restart_and_wait(running, rows)
                done = [
                    f"{'recreated' if after[s].get('container') != rows[s].get('container') else 'restarted'} {s}"
                    if s in after
                    else f"{s} did not start again (see `unistack ps` and `unistack logs {s}`)"
                    for s in running
                ]
                told += "; " + ", ".join(done)
            stopped = [s for s in wanted if s not in running]
            if stopped:
                told += f"; {', '.join(stopped)} will run it when started"
            self.say(told)

    def _build_line(self, image: str, line: str) -> None:
        self.say(f"  {image} | {line}")

    def _restart_and_wait(self, services: list[str], before: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Ask the daemon to restart ``services`` (a changed image means a new container); the rows of those
        that run again (a new start time) within RESTART_WAIT seconds."""
        client = self._client()
        waiting = "another unistack command is changing this instance; waiting for it to finish"
        with state.instance_lock(self.project.state_dir, on_wait=lambda: self.say(waiting)):
            client.call("restart", services=services)
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            rows = self._ps()
            back = {
                s: rows[s]
                for s in services
                if s in rows
                and rows[s].get("state") in RUNNING_STATES
                and rows[s].get("container")
                and rows[s].get("started_at") != before.get(s, {}).get("started_at")
            }
            if len(back) == len(services) or time.monotonic() > deadline:
                return back
            if any(rows.get(s, {}).get("state") in ("fatal", "exited", "blocked") for s in services):
                return back
            time.sleep(0.2)

    def _ps(self) -> dict[str, dict[str, Any]]:
        return {row["service"]: row for row in self._client().call("ps")}

    def _client(self) -> daemon_client.DaemonClient:
        client = daemon_client.existing(self.project.state_dir)
        if client is None:
            raise UsageError(f"{self.project.name} is not up any more")
        return client


def _on_disk(paths: Iterable[Path]) -> dict[Path, bool]:
    """Each changed path -> whether it is gone now, plus what is inside folders that appeared (a folder moved in
    is reported alone)."""
    found: dict[Path, bool] = {}
    for path in paths:
        found[path] = not os.path.lexists(path)
        if not found[path] and path.is_dir() and not path.is_symlink():
            found.update(dict.fromkeys(_files_under(path), False))
    return found


def _files_under(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path] if path.exists() else []
    found: list[Path] = []
    for folder, dirs, files in os.walk(path):
        found.extend(Path(folder) / name for name in (*dirs, *files))
    return found


class _Sources:
    """The watchfiles threads (one for ``Roots.deep``, one for ``Roots.flat``), feeding one queue."""

    READY_WAIT = 10.0  # seconds ``start`` waits for the watches to be in place (large trees take a while)

    def __init__(self, out: queue.Queue[list[Path] | BaseException], accept: Callable[[Path], bool]) -> None:
        self.out, self.accept = out, accept
        self.roots = Roots()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, roots: Roots) -> None:
        """Watch ``roots`` (instead of what was watched); returns once the watches are in place, so that no
        change made after it returns is missed."""
        self.stop()
        self.roots, self._stop = roots, threading.Event()
        ready = []
        for folders, recursive in ((roots.deep, True), (roots.flat, False)):
            if folders:
                ready.append(threading.Event())
                thread = threading.Thread(
                    target=self._follow,
                    args=(folders, recursive, self._stop, ready[-1]),
                    name="unistack-watch",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        deadline = time.monotonic() + self.READY_WAIT
        for event in ready:
            event.wait(max(0.0, deadline - time.monotonic()))

    def _follow(
        self, folders: tuple[Path, ...], recursive: bool, stop: threading.Event, ready: threading.Event
    ) -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(
                *folders,
                recursive=recursive,
                watch_filter=lambda _change, path: self.accept(Path(path)),
                debounce=400,
                step=50,
                stop_event=stop,
                rust_timeout=300,
                yield_on_timeout=True,  # the first (empty) answer says the watches are in place
                raise_interrupt=False,
            ):
                ready.set()
                if changes:
                    self.out.put([Path(path) for _, path in changes])
        except Exception as exc:
            if not stop.is_set():
                self.out.put(exc)
        finally:
            ready.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
