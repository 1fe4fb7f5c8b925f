"""Where the dashboard reads an instance: the daemon's ``ps`` and its stop/start/restart requests (through
``control.client``: never a daemon started or replaced from here, so the dashboard is no second supervisor and a
daemon being replaced is simply away for a while), ``logs/events.jsonl`` (tail, and followed from its end across
truncation and rotation), the services' logs following restarts (the runtime's ``logs``, as ``logs -f``), CPU
and memory (psutil over a host process's tree; a container's one-shot Engine stats), cached ~2 s, and
``validate`` run as its own ``unistack validate --format json`` process.

``Sources`` is the seam the server sees (the unit tests give it a fake); ``InstanceSources`` the real one.
Never formats a page, never holds a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil

from unistack.control import client as daemon_client
from unistack.control import state
from unistack.dashboard import views
from unistack.dashboard.records import CheckRecord, EventRecord, LogRecord, Stats, ValidateReport
from unistack.engine.events import iso
from unistack.engine.states import LIVE, ServiceRow, rows_from
from unistack.errors import DaemonError, StateError, UnistackError
from unistack.runtimes import DOCKER, logfiles

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.runtimes.base import Runtime

ANSWER_WITHIN = 3.0  # seconds the daemon may take to answer ps before it counts as away
STATS_EVERY = 2.0  # seconds a stats reading is reused
ACTION_LOCK_WAIT = 60.0  # seconds an action waits for another command's instance lock
VALIDATE_WITHIN = 300.0
EVENTS_READ = 4000  # lines of the event log read for the restart history when the dashboard starts


class DaemonAway(UnistackError):
    """No daemon answers for the instance now (stopped, being replaced, or the instance is down)."""


class ActionRefused(UnistackError):
    """The daemon refused an action (``status``: the HTTP status that says why)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Sources(Protocol):
    project: str
    runtime: str
    environment: str | None
    needs: dict[str, dict[str, str]]  # service -> {dependency: condition}

    async def rows(self) -> list[ServiceRow]:
        """The daemon's ``ps``; DaemonAway when none answers."""

    def daemon_pid(self) -> int | None: ...

    async def stats(self, rows: Sequence[ServiceRow]) -> dict[str, Stats]: ...

    def events(self, limit: int) -> list[EventRecord]:
        """The last ``limit`` events, oldest first."""

    def follow_events(self) -> AsyncIterator[EventRecord]:
        """Events appended from now on."""

    def follow_logs(self, services: Sequence[str], tail: int) -> AsyncIterator[LogRecord]:
        """The last ``tail`` lines of each service, then new ones as they come, across restarts."""

    async def act(self, verb: str, service: str) -> list[ServiceRow]:
        """stop, start or restart one service through the daemon; ActionRefused when it cannot."""

    async def validate(self) -> ValidateReport:
        """``unistack validate`` for the instance; UnistackError when it could not run."""


@dataclass
class InstanceSources:
    """The real instance: its daemon, files and runtime. ``cli_args`` are the global options that name it (for
    the validate process)."""

    loaded: Project
    runtime: str
    cli_args: list[str]
    cwd: Path = field(default_factory=Path.cwd)
    _runtime: Runtime | None = None
    _stats: StatsReader | None = None

    def __post_init__(self) -> None:
        self.project = self.loaded.name
        self.environment = self.loaded.environment or None
        self.needs = views.depends_on(self.loaded)
        self.client = daemon_client.DaemonClient(self.loaded.state_dir)

    async def rows(self) -> list[ServiceRow]:
        return await asyncio.to_thread(self._ps)

    def _ps(self) -> list[ServiceRow]:
        try:
            return rows_from(self.client.call("ps", answer_within=ANSWER_WITHIN))
        except (DaemonError, daemon_client.RemoteError, ValueError) as exc:
            raise DaemonAway(f"no supervisor daemon answers for {self.project} ({exc})") from exc

    def daemon_pid(self) -> int | None:
        try:
            return daemon_client.pid_of(self.loaded.state_dir)
        except (OSError, StateError, ValueError):
            return None

    async def stats(self, rows: Sequence[ServiceRow]) -> dict[str, Stats]:
        if self._stats is None:
            self._stats = StatsReader(ContainerStats() if self.runtime == DOCKER else None)
        return await self._stats.read(rows)

    def events(self, limit: int) -> list[EventRecord]:
        path = state.events_log(self.loaded.state_dir)
        lines = logfiles.tail_lines(path, limit, chunk=max(64 * 1024, limit * 512)) if limit > 0 else []
        return [record for line in lines if (record := views.event_record(line)) is not None]

    async def follow_events(self) -> AsyncIterator[EventRecord]:
        path = state.events_log(self.loaded.state_dir)
        async for line in logfiles.follow([("unistack", path)], 0, True):
            if (record := views.event_record(line.text)) is not None:
                yield record

    async def follow_logs(self, services: Sequence[str], tail: int) -> AsyncIterator[LogRecord]:
        if self._runtime is None:
            from unistack.runtimes import create_runtime

            self._runtime = create_runtime(self.runtime)
        names = list(services) or list(self.loaded.services)
        async for line in self._runtime.logs(self.loaded, names, tail, True):
            yield LogRecord(service=line.service, text=line.text)

    async def act(self, verb: str, service: str) -> list[ServiceRow]:
        return await asyncio.to_thread(self._act, verb, service)

    def _act(self, verb: str, service: str) -> list[ServiceRow]:
        """As ``unistack <verb> <service>`` does it: under the instance lock, a request to the daemon."""
        try:
            with state.instance_lock(self.loaded.state_dir, timeout=ACTION_LOCK_WAIT):
                if not state.daemon_alive(self.loaded.state_dir):
                    raise ActionRefused(f"{self.project} has no supervisor daemon now; run `unistack up`", 409)
                return rows_from(self.client.call(verb, services=[service]))
        except StateError as exc:  # the lock stayed taken
            raise ActionRefused(str(exc), 409) from exc
        except daemon_client.RemoteError as exc:
            raise ActionRefused(str(exc), 400 if exc.exit_code == 2 else 500) from exc
        except DaemonError as exc:
            raise ActionRefused(str(exc), 409) from exc

    async def validate(self) -> ValidateReport:
        argv = [sys.executable, "-m", "unistack", *self.cli_args, "validate", "--format", "json"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), VALIDATE_WITHIN)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise UnistackError(f"validate did not finish within {VALIDATE_WITHIN:g} s") from None
        if proc.returncode not in (0, 1):
            text = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
            raise UnistackError(text.removeprefix("error: "))
        return validate_report(out, time.time())


def validate_report(text: bytes, finished: float) -> ValidateReport:
    """``validate --format json``'s output as the dashboard's report."""
    from unistack.ops import report

    results = report.from_json(text)
    checks = [
        CheckRecord(
            name=r.name,
            component=r.component,
            ok=r.verdict != "fail",
            verdict=r.verdict,
            message=" ".join(part for part in (r.detail, r.hint) if part),
            duration_s=round(r.duration, 3),
        )
        for r in results
    ]
    return ValidateReport(ok=all(c.ok for c in checks), checks=checks, finished_at=iso(finished) or "")


class StatsReader:
    """CPU and memory of each live service, read at most every ``STATS_EVERY`` seconds (host processes: psutil
    over the main process and its descendants; containers: ``ContainerStats``)."""

    def __init__(self, containers: ContainerStats | None) -> None:
        self.containers = containers
        self._procs: dict[int, psutil.Process] = {}  # pid -> the Process whose cpu_percent remembers its last call
        self._last: dict[str, Stats] = {}
        self._at = -1e9

    async def read(self, rows: Sequence[ServiceRow], now: float | None = None) -> dict[str, Stats]:
        now = time.monotonic() if now is None else now
        if now - self._at < STATS_EVERY and all(r.service in self._last for r in rows if r.state in LIVE):
            return self._last
        self._at = now
        live = [r for r in rows if r.state in LIVE]
        if self.containers is not None:
            self._last = await asyncio.to_thread(self.containers.read, live)
        else:
            self._last = await asyncio.to_thread(self._processes, live)
        return self._last

    def _processes(self, rows: Sequence[ServiceRow]) -> dict[str, Stats]:
        found: dict[str, Stats] = {}
        kept: dict[int, psutil.Process] = {}
        for row in rows:
            if row.pid is None:
                continue
            first = self._known(row.pid) is None  # a first reading has no interval to measure CPU over
            try:
                main = self._known(row.pid) or psutil.Process(row.pid)
                tree = [main, *main.children(recursive=True)]
            except psutil.Error:
                continue
            cpu, memory = 0.0, 0
            for found_proc in tree:
                proc = self._known(found_proc.pid) or found_proc
                kept[proc.pid] = proc
                try:
                    cpu += proc.cpu_percent(None)
                    memory += proc.memory_info().rss
                except psutil.Error:
                    continue
            found[row.service] = Stats(cpu_percent=None if first else round(cpu, 1), memory_bytes=memory)
        self._procs = kept
        return found

    def _known(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        return proc if proc is not None and proc.is_running() else None


class ContainerStats:
    """A container's CPU and memory from the Engine's one-shot stats (no waiting for a second sample: the CPU
    share is computed against this reader's previous reading of the same container)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._previous: dict[str, tuple[int, int]] = {}  # container -> (its CPU total, the system's), ns

    def read(self, rows: Sequence[ServiceRow]) -> dict[str, Stats]:
        found: dict[str, Stats] = {}
        for row in rows:
            if row.container is None:
                continue
            with contextlib.suppress(Exception):  # gone, or the Engine is busy: no figure this time
                found[row.service] = self._one(row.container)
        return found

    def _one(self, container: str) -> Stats:
        if self._client is None:
            from unistack.runtimes.docker.engine import client

            self._client = client(timeout=5)
        raw = self._client.api.stats(container, stream=False, one_shot=True)
        memory = raw.get("memory_stats") or {}
        usage = memory.get("usage")
        inactive = (memory.get("stats") or {}).get("inactive_file", 0)
        cpu_stats = raw.get("cpu_stats") or {}
        total = int((cpu_stats.get("cpu_usage") or {}).get("total_usage") or 0)
        system = int(cpu_stats.get("system_cpu_usage") or 0)
        cpus = int(cpu_stats.get("online_cpus") or 1)
        percent = None
        if (before := self._previous.get(container)) is not None and system > before[1]:
            percent = round(max(0.0, (total - before[0]) / (system - before[1]) * cpus * 100.0), 1)
        self._previous[container] = (total, system)
        return Stats(cpu_percent=percent, memory_bytes=int(usage - inactive) if isinstance(usage, int) else None)
