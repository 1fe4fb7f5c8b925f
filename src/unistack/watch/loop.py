"""``unistack watch``: follow the watched files and carry out each batch's plan on the running containers.

Owns the running part: the watchfiles threads feeding one queue, the loop that gathers their changes into
batches until Ctrl+C or until the instance goes down, and carrying out each plan:

- ``sync``: the files are copied into the service's container (``put_archive``, a tar whose entries belong to
  the container's user) and deleted files removed in it (``rm -rf`` through exec);
- ``sync+restart`` (and ``restart``): the same, then the daemon restarts the service (same container);
- ``rebuild``: ``runtimes.docker.images`` builds the image, then the daemon restarts the service, which recreates its
  container from the new image.

Never parses rules (``rules`` does) nor decides what a batch asks for (``planning`` does); never decides anything
about a service's life (the daemon's engine does) and never prints (``say`` does).
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from unistack.config.model import Project
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.engine.states import ServiceRow
from unistack.errors import NotSupported, RuntimeFailure, UnistackError, UsageError
from unistack.runtimes import DOCKER
from unistack.watch.planning import (
    Debouncer,
    FileSync,
    Plan,
    Roots,
    initial_plan,
    plan,
    tar_entries,
    watch_roots,
)
from unistack.watch.rules import WatchRule, load_rules, shown

RESTART_WAIT = 120.0  # seconds a restarted or recreated service gets to run again before we say it did not

PROCESS_MODE = (
    "develop.watch applies to containers; host processes already run your sources — the backend reloads and "
    "Vite serves changes"
)


def run(project: Project, services: Sequence[str], runtime_name: str, say: Callable[[str], None]) -> None:
    """``unistack watch``: act on changes until Ctrl+C or until the instance goes down."""
    if runtime_name != DOCKER:
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
    from unistack.runtimes.docker.engine import client as docker_client

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
            self.say(f"{rule.service}: {rule.action} {shown(self.project, rule.path)}{where}")
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
        from unistack.runtimes.docker import filecopy as docker_copy
        from unistack.runtimes.docker.logs import find_container

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
        from unistack.runtimes.docker import filecopy as docker_copy

        if container not in self.owners:
            user, owner = docker_copy.container_owner(self.docker, container)
            if owner is None:
                self.say(f"the container's user {user!r} is not in its /etc/passwd; synced files belong to root")
            self.owners[container] = owner or (0, 0)
        return self.owners[container]

    # ---------------------------------------------------------------- restart and rebuild

    def _restart(self, services: Sequence[str]) -> None:
        rows = self._ps()
        running = [s for s in services if s in rows and rows[s].live]
        for service in services:
            if service not in running:
                self.say(f"{service} is not running; not restarted")
        if running:
            after = self._restart_and_wait(running, rows)
            for service in running:
                if service not in after:
                    self.say(f"restarted {service}, which is not running now (see `unistack logs {service}`)")
                elif after[service].container != rows[service].container:
                    self.say(f"restarted {service} in a new container (its image or configuration changed)")
                else:
                    self.say(f"restarted {service}")

    def _rebuild(self, services: Sequence[str]) -> None:
        from unistack.runtimes.docker import images

        for build in images.plans(self.project, services):
            wanted = [s for s in build.services if s in services]
            self.say(f"rebuilding {build.image} for {', '.join(wanted)}")
            result = images.build(self.docker, build, functools.partial(self._build_line, build.image))
            if not result.built:
                self.say(f"{build.image} is up to date; {', '.join(wanted)} left as they are")
                continue
            rows = self._ps()
            running = [s for s in wanted if s in rows and rows[s].live]
            told = f"rebuilt {build.image}"
            if running:
                after = self._restart_and_wait(running, rows)
                done = [
                    f"{'recreated' if after[s].container != rows[s].container else 'restarted'} {s}"
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

    def _restart_and_wait(self, services: list[str], before: Mapping[str, ServiceRow]) -> dict[str, ServiceRow]:
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
                and rows[s].live
                and rows[s].container
                and rows[s].started_at != (before[s].started_at if s in before else None)
            }
            if len(back) == len(services) or time.monotonic() > deadline:
                return back
            if any(rows[s].state in {"fatal", "exited", "blocked"} for s in services if s in rows):
                return back
            time.sleep(0.2)

    def _ps(self) -> dict[str, ServiceRow]:
        return {row.service: row for row in self._client().ps()}

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
