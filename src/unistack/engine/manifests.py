"""Dependencies without rebuilds (development): what a change to a service's dependency manifest sets off.

Owns the policy of ``x-unistack.dependencies`` on a running instance:

- which services a changed file concerns (``owners``);
- a batch per service once its manifests were quiet for ``QUIET`` seconds (a save of several files is one
  install); a manifest whose content is what was last installed (saved unchanged, touched) sets off nothing;
- one install at a time per service: a change meanwhile makes one more round after it;
- the install runs while the service keeps running (the runtime installs into the live incarnation); only when it
  succeeded, and installed something, is the service restarted, through the engine while holding the daemon's
  lock (as a ``restart`` request would be); a failed install (or one past its timeout) leaves the service running
  as it was, in an ``error`` event that says why and what to do;
- the one-line summary of what pip or npm installed (``installed_summary``).

Never watches or reads files and never runs anything itself: the daemon feeds it changed paths and gives it
``fingerprint`` (a file's content digest); installs go through the runtime, restarts through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from unistack.config.model import Project
from unistack.engine.clock import Clock, SystemClock
from unistack.engine.events import Event, EventKind
from unistack.engine.supervisor import Engine
from unistack.runtimes.base import ProbeResult

QUIET = 0.3  # seconds without a change to a service's manifests before its install begins
FAILED_LINES = 3  # lines of a failed install's output quoted in its event

_PIP_INSTALLED = re.compile(r"^Successfully installed (.+)$", re.MULTILINE)
_NPM_CHANGED = re.compile(
    r"^((?:added|removed|changed) \d+ packages?(?:, (?:added|removed|changed) \d+ packages?)*)",
    re.MULTILINE,
)
_ERROR_LINE = re.compile(r"error|failed|not found|no such|denied", re.IGNORECASE)
_NOTHING_NEW = re.compile(r"^(?:up to date|Requirement already satisfied)|is up to date\b", re.MULTILINE)


def owners(project: Project) -> dict[Path, tuple[str, ...]]:
    """Each manifest of the project's ``x-unistack.dependencies`` and the services that declare it."""
    found: dict[Path, list[str]] = {}
    for name, service in project.services.items():
        for manifest in service.dependencies.manifests if service.dependencies else ():
            found.setdefault(manifest.path, []).append(name)
    return {path: tuple(names) for path, names in sorted(found.items())}


def installed_summary(output: str) -> tuple[bool, str]:
    """(whether anything was installed, what in words) from an installer's output: pip's ``Successfully installed
    six-1.17.0`` is ``installed six 1.17.0``, npm's ``added 2 packages, and audited ...`` is ``added 2 packages``;
    only "already satisfied" / "up to date" lines mean nothing new; anything else counts as installed."""
    parts: list[str] = []
    for match in _PIP_INSTALLED.finditer(output):
        names = [_name_version(item) for item in match.group(1).split()]
        parts.append("installed " + ", ".join(names))
    parts += [match.group(1) for match in _NPM_CHANGED.finditer(output)]
    if parts:
        return True, "; ".join(dict.fromkeys(parts))
    if _NOTHING_NEW.search(output):
        return False, "nothing new to install"
    return True, "installed"


def _name_version(item: str) -> str:
    name, dash, version = item.rpartition("-")
    return f"{name} {version}" if dash and name else item


class ManifestFollower:
    """Reacts to changed manifests of the engine's project, one worker task per service with a change pending."""

    def __init__(
        self,
        engine: Engine,
        *,
        fingerprint: Callable[[Path], str | None],
        exclusive: Callable[[], AbstractAsyncContextManager[Any]],
        on_event: Callable[[Event], None],
        clock: Clock | None = None,
        quiet: float = QUIET,
    ) -> None:
        self.engine = engine
        self.fingerprint, self.exclusive, self.on_event = fingerprint, exclusive, on_event
        self.clock: Clock = clock or SystemClock()
        self.quiet = quiet
        self._owners: dict[Path, tuple[str, ...]] = {}
        self._installed: dict[Path, str | None] = {}  # what each manifest held when it was last installed
        self._pending: dict[str, set[Path]] = {}
        self._last_change: dict[str, float] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def follow(self) -> list[Path]:
        """Take the engine's project as it is now (after an ``up``): the manifests to watch. A manifest seen for
        the first time counts as installed as it is (the setup step or the image build installed it)."""
        self._owners = owners(self.engine.project)
        for path in self._owners:
            if path not in self._installed:
                self._installed[path] = self.fingerprint(path)
        for path in set(self._installed) - set(self._owners):
            del self._installed[path]
        return list(self._owners)

    def changed(self, paths: Iterable[Path]) -> None:
        """Files changed on disk (any path; those that are no manifest are left alone)."""
        now = self.clock.now()
        for path in paths:
            for name in self._owners.get(path, ()):
                self._pending.setdefault(name, set()).add(path)
                self._last_change[name] = now
                if name not in self._workers:
                    task = asyncio.get_running_loop().create_task(self._worker(name), name=f"manifests:{name}")
                    self._workers[name] = task

    def busy(self) -> bool:
        """Whether a change is pending or an install runs (tests and the benchmark wait on this)."""
        return bool(self._workers)

    async def close(self) -> None:
        """Cancel what is pending or running (an install in progress is stopped; nothing is restarted)."""
        tasks = list(self._workers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._pending.clear()

    async def _worker(self, name: str) -> None:
        try:
            while self._pending.get(name):
                wait = self._last_change[name] + self.quiet - self.clock.now()
                if wait > 0:
                    await self.clock.sleep(wait)
                    continue
                self._pending.pop(name, None)
                await self._round(name)
        except Exception as exc:  # a bug must not end the daemon's following silently
            self._emit("error", name, f"{name}: following its dependency manifests failed: {exc!r}")
        finally:
            self._workers.pop(name, None)

    async def _round(self, name: str) -> None:
        """One install of what changed (if anything did), then the restart when it succeeded."""
        project = self.engine.project
        service = project.services.get(name)
        deps = service.dependencies if service is not None else None
        if service is None or deps is None:
            return
        before = {m.path: self.fingerprint(m.path) for m in deps.manifests}
        changed = [path for path, digest in before.items() if digest != self._installed.get(path)]
        if not changed:
            return
        self._installed.update(before)  # a failed install is not retried until the file changes again
        files = ", ".join(path.name for path in changed)
        data: dict[str, Any] = {"files": [str(path) for path in changed]}
        if not self.engine.is_wanted(name):
            self._emit(
                "install", name, f"{name}: {files} changed; {name} is not running: its next start installs it", **data
            )
            return
        runtime = self.engine.runtime
        self._emit("install", name, f"{name}: {files} changed; installing ({runtime.install_step(service)})", **data)
        began = self.clock.now()
        result = await self._within(runtime.install(project, service, self.engine.status[name].handle), deps.timeout)
        if result is None:
            result = ProbeResult(False, None, f"the install took longer than {deps.timeout:g}s and was stopped")
        took = self.clock.now() - began
        self._again_if_rewritten(name, before)
        if not result.ok:
            lines = [line.strip() for line in result.output.splitlines() if line.strip()]
            lines = ([line for line in lines if _ERROR_LINE.search(line)] or lines)[-FAILED_LINES:]
            code = "" if result.exit_code is None else f" (exit code {result.exit_code})"
            self._emit(
                "error",
                name,
                f"{name}: {files} changed; the install failed{code}: {' / '.join(lines) or 'no output'}; {name} keeps "
                f"running as it was: fix {files} and save again (`unistack logs {name}` shows the whole output)",
                exit_code=result.exit_code,
                **data,
            )
            return
        new, summary = installed_summary(result.output)
        data["installed"] = summary
        if not new:
            self._emit("install", name, f"{name}: {files} changed; {summary}; {name} keeps running", **data)
            return
        async with self.exclusive():  # no `up`, `stop` or `down` in between
            if self.engine.project.services.get(name) is None or not self.engine.is_wanted(name):
                self._emit("install", name, f"{name}: {files} changed; {summary}; {name} is not running now", **data)
                return
            self._emit("install", name, f"{name}: {files} changed; {summary} ({took:.1f}s); restarting", **data)
            await self.engine.restart([name], cause="install")

    async def _within(self, install: Coroutine[Any, Any, ProbeResult], seconds: float) -> ProbeResult | None:
        """The install's result, or None when it ran past ``seconds`` on the engine's clock (then it is stopped)."""
        running = asyncio.ensure_future(install)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({running, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not running.done():
                running.cancel()
                await asyncio.wait({running}, timeout=10)  # the runtime stops the installer (bounded)
        return running.result() if not running.cancelled() else None

    def _again_if_rewritten(self, name: str, before: dict[Path, str | None]) -> None:
        """A manifest that changed while the install ran (saved again, or rewritten by the installer, as npm does
        package-lock.json) makes one more round; one the installer rewrote then installs nothing new."""
        for path, digest in before.items():
            if self.fingerprint(path) != digest:
                self._pending.setdefault(name, set()).add(path)
                self._last_change[name] = self.clock.now()

    def _emit(self, kind: EventKind, name: str, message: str, /, **data: Any) -> None:
        self.on_event(Event(kind, name, message, self.clock.wall(), data))
