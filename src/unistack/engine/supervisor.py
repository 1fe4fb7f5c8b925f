"""The engine: the table of supervised services and the verbs on it; one asyncio task (a runner) per service.

Owns each service's status (the state machine ``created -> starting -> running | healthy | unhealthy -> exited |
fatal | stopped``, plus ``blocked`` while a dependency will not become available: ``states.py``), which services
have a runner, the selection of services in start order, ``up`` (a runner each: ``runner.py``, gated by
``gating.py``, probed by ``probing.py``), stop in reverse dependency order (the stop signal, the grace period, a
kill reported), ``restart`` as Compose's, ``wait_ready``, the second Ctrl+C's kill, ``ps`` rows and the paragraph
on why a service is not ready, and the wake-ups: a change of a service wakes the tasks waiting on it. Bringing a
running instance in line with a changed project is ``reconcile.py``'s. It sees only the Runtime protocol and the
Clock; it never imports subprocess, docker or sockets, and never formats output (events do that job).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from unistack import graph
from unistack.config.model import Project
from unistack.engine import reconcile, runner
from unistack.engine.clock import Clock, SystemClock
from unistack.engine.events import Event, EventKind
from unistack.engine.states import LIVE, RestartCause, ServiceRow
from unistack.engine.status import ServiceStatus, WaitReport
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import Handle, Runtime, StopResult

LOG_TAIL = 20
RUNNER_STOP_TIMEOUT = 15.0  # seconds a cancelled runner gets to end before its process is stopped anyway
STABLE_RUN = 1.0  # seconds a service without a healthcheck must stay up before ``--wait`` calls it ready


class Engine:
    def __init__(
        self,
        project: Project,
        runtime: Runtime,
        *,
        clock: Clock | None = None,
        on_event: Callable[[Event], None] = lambda event: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.project = project
        self.runtime = runtime
        self.clock: Clock = clock or SystemClock()
        self.on_event = on_event
        self.on_change = on_change
        self.status: dict[str, ServiceStatus] = {name: ServiceStatus(name) for name in project.services}
        self.tasks: dict[str, asyncio.Task[None]] = {}  # each service's runner (``runner.run``)
        # wake-ups: the futures of tasks waiting in ``wait_until``, by the service whose change they wait for
        # (None: any change); a change wakes only those, synchronously (no lock, no task per change)
        self._waiters: dict[str | None, set[asyncio.Future[None]]] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        # why a service's last start cannot succeed by retrying (PermanentFailure): it went fatal at once
        self.cannot_start: dict[str, str] = {}
        # services a ``restart`` is stopping to start again: still wanted (a daemon killed meanwhile is replaced by
        # one that finishes the restart, instead of one that leaves them stopped)
        self.restarting: set[str] = set()
        # the live ones among them until their restart is recorded, with its cause (a next daemon records it)
        self.restart_unrecorded: dict[str, RestartCause] = {}

    # ----------------------------------------------------------------- public API

    def graph(self) -> dict[str, list[str]]:
        return _dependencies(self.project)

    def selection(self, services: Iterable[str] | None, project: Project | None = None) -> list[str]:
        """The named services plus what they depend on, in start order (everything when None), of ``project``
        (the one running when None)."""
        g = _dependencies(project or self.project)
        chosen = graph.closure(g, services) if services else set(g)
        return [name for name in graph.start_order(g) if name in chosen]

    async def up(
        self,
        services: Iterable[str] | None = None,
        adopted: dict[str, Handle] | None = None,
        with_dependencies: bool = True,
        setup: bool = True,
    ) -> None:
        """Start a runner for every selected service (and, unless told otherwise, its dependencies) that is not
        running; return at once. ``adopted`` are live incarnations to supervise instead of starting new ones.
        ``setup`` False skips the services' setup step (``restart``: like Compose's, it never builds)."""
        await self.runtime.prepare(self.project)
        adopted = adopted or {}
        names = self.selection(services)
        if not with_dependencies:
            names = [n for n in names if n in set(services or ())]
        for name in names:
            task = self.tasks.get(name)
            if task is not None and not task.done():
                continue
            st = self.status[name]
            if name not in adopted:  # a new runner: nothing of the previous incarnation counts any more
                st.state, st.health, st.reason, st.exit_code = "created", "none", "", None
            st.attempts = 0  # and a fresh restart budget
            life = runner.run(self, name, adopted.get(name), setup)
            self.tasks[name] = asyncio.create_task(life, name=f"service:{name}")
        self.changed_now()  # who is supervised changed: an optional dependency may now be waited for

    async def stop(self, services: Iterable[str] | None = None, timeout: float | None = None) -> None:
        """Stop services (all when None) in reverse dependency order, as Compose's ``stop`` does."""
        g = self.graph()
        names = set(g) if services is None else set(services)
        for layer in reversed(graph.layers(g)):
            await asyncio.gather(*(self._stop_one(n, timeout) for n in layer if n in names))

    async def restart(
        self, services: Iterable[str] | None = None, timeout: float | None = None, cause: RestartCause = "requested"
    ) -> None:
        """Stop then start the named services (and dependents that ask ``restart: true`` on them), as Compose's
        ``restart`` does: their dependencies are left as they are, and nothing is set up (built) again. Each live
        one's restart is recorded with ``cause`` (a planned one: never flapping)."""
        g = self.graph()
        asked = set(services or g)
        names = set(asked)
        for name in asked:
            names |= self.restart_followers(name)
        wanted = names - self.restarting
        self.restarting |= wanted
        try:
            live = {n for n in wanted if self.is_live(n)}
            self.restart_unrecorded |= {n: cause if n in asked else "dependency" for n in live}
            for layer in reversed(graph.layers(g)):
                await asyncio.gather(*(self._stop_one(n, timeout) for n in layer if n in names))
            for name in live:
                self.status[name].restarted(self.clock.wall(), self.restart_unrecorded.pop(name))
            await self.up(names, with_dependencies=False, setup=False)
        finally:
            self.restarting -= wanted
            for name in wanted:
                self.restart_unrecorded.pop(name, None)

    async def reconcile(self, project: Project, services: Iterable[str] | None = None) -> dict[str, str]:
        """Bring a running instance in line with ``project`` as Compose's ``up`` does (``engine.reconcile``):
        removed services are stopped, changed ones recreated, missing ones started. Returns what was done."""
        return await reconcile.reconcile(self, project, services)

    async def stop_runner(self, name: str) -> None:
        """Stop the service's runner and its incarnation (stop signal, grace period), as ``stop`` does."""
        await self._stop_one(name, None)

    async def wait_ready(self, services: Iterable[str] | None = None, timeout: float | None = None) -> WaitReport:
        """Wait until every selected service is ready, or one failed, or ``timeout`` seconds passed."""
        names = self.selection(services)

        def settled() -> bool:
            return all(self.ready_or_failed(n) for n in names)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    await self.wait_until(settled, names)
                    # a service without a healthcheck counts as ready once it stayed up for a moment
                    young = [self._uptime_left(n) for n in names]
                    if max(young, default=0.0) <= 0:
                        break
                    await self.clock.sleep(max(young))
        report = WaitReport()
        for name in names:
            st, svc = self.status[name], self.project.services[name]
            if st.ready(svc):
                report.ready.append(name)
            elif self.ready_or_failed(name):
                report.failed[name] = await self.describe(name)
            else:
                report.pending[name] = await self.describe(name)
        return report

    def _uptime_left(self, name: str) -> float:
        st, svc = self.status[name], self.project.services[name]
        if svc.healthcheck is not None or st.state != "running" or st.started_at is None:
            return 0.0
        return STABLE_RUN - (self.clock.wall() - st.started_at)

    async def kill(self) -> None:
        """Kill every live incarnation at once (the second Ctrl+C); a stop in progress then finishes quickly."""
        handles = [st.handle for st in self.status.values() if st.handle is not None]
        for handle in handles:
            self.emit("killed", handle.service, f"{handle.service} killed (SIGKILL) on request")
        await asyncio.gather(*(self.runtime.stop(h, "SIGKILL", 0.0) for h in handles), return_exceptions=True)

    async def close(self, timeout: float | None = None) -> None:
        """Stop everything and end every runner."""
        await self.stop(None, timeout)

    def is_wanted(self, name: str) -> bool:
        """True while a runner owns the service (starting, running, waiting or backing off) or a ``restart`` is
        replacing it."""
        return self.is_live(name) or name in self.restarting

    def snapshot(self) -> list[ServiceRow]:
        g = self.graph()
        return [self.status[n].row(self.project.services[n]) for n in graph.start_order(g)]

    async def describe(self, name: str) -> str:
        """One paragraph on why a service is not ready: state, reason, last check, last log lines."""
        st = self.status[name]
        parts = [f"{name} is {st.state}" + (f" ({st.health})" if st.health != "none" and st.state in LIVE else "")]
        if st.reason:
            parts.append(st.reason)
        if st.last_check is not None and not st.last_check.ok:
            parts.append(f"last check (exit {st.last_check.exit_code}): {st.last_check.output.strip() or '-'}")
        lines = await self.tail(name) if name not in self.cannot_start else []  # nothing ran: old lines
        if lines and st.state in {"exited", "fatal", "unhealthy", "starting"}:
            parts.append("last log lines:\n    " + "\n    ".join(lines[-10:]))
        return "; ".join(parts)

    # ----------------------------------------------------------------- for the runners and the reconciler

    def ready_or_failed(self, name: str) -> bool:
        st, svc = self.status[name], self.project.services[name]
        if st.ready(svc) or st.failed():
            return True
        return st.state == "unhealthy" and svc.restart.mode == "no"

    def restart_followers(self, name: str) -> set[str]:
        """The services that ask ``restart: true`` on ``name``: restarted when it is."""
        return {n for n, s in self.project.services.items() if (d := s.depends_on.get(name)) and d.restart}

    # ----------------------------------------------------------------- stop

    def is_live(self, name: str) -> bool:
        task = self.tasks.get(name)
        return task is not None and not task.done()

    async def _stop_one(self, name: str, timeout: float | None) -> None:
        task = self.tasks.get(name)
        st = self.status.get(name)
        if st is None:
            return
        if task is not None and not task.done():
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=RUNNER_STOP_TIMEOUT)
            if not done:  # a bug, but the process must still be stopped: go on with what the runner left
                self.emit("error", name, f"{name}: its supervisor task did not end; stopping the process anyway")
        handle = st.handle
        if handle is None:
            if st.state in {"created", "blocked", "starting"}:
                st.state = "stopped"
                self.changed_now(name)
            return
        svc = self.project.services[name]
        grace = svc.stop_grace_period if timeout is None else timeout
        self.emit("stopping", name, f"{name} stopping ({svc.stop_signal}, grace {grace:g}s)")
        # one loop turn before the signal: what the event scheduled runs first (the daemon saves the stop as begun,
        # so a daemon killed from here on leaves the next one a stop to finish, never a service signalled unsaid)
        await asyncio.sleep(0)
        result = await self.runtime.stop(handle, svc.stop_signal, grace)
        st.handle, st.exit_code = None, result.exit_code
        st.state, st.health = "stopped", "none"
        self.report_kill(name, result, grace)
        self.emit("stopped", name, f"{name} stopped", exit_code=result.exit_code)

    def report_kill(self, name: str, result: StopResult, grace: float) -> None:
        if result.frozen:
            self.emit("killed", name, f"{name} was frozen (stopped or paused) and was killed (SIGKILL) at once")
        elif result.killed:
            self.emit("killed", name, f"{name} did not stop within {grace:g}s and was killed (SIGKILL)")

    # ----------------------------------------------------------------- plumbing

    async def tail(self, name: str) -> list[str]:
        try:
            return await self.runtime.tail(self.project, name, LOG_TAIL)
        except RuntimeFailure:
            return []

    def emit(self, kind: EventKind, service: str | None, message: str, /, **data: Any) -> None:
        self.on_event(Event(kind, service, message, self.clock.wall(), data))
        if kind in {"waiting", "check_failed"}:  # news, not a change of state: nobody's condition changed
            self.on_change()
        else:
            self.changed_now(service)

    def changed_now(self, service: str | None = None) -> None:
        """Something about ``service`` (None: anything) changed: wake the tasks whose condition may now hold."""
        self.on_change()
        if service is None:
            woken = set().union(*self._waiters.values())
        else:
            woken = self._waiters.get(service, set()) | self._waiters.get(None, set())
        for waiter in woken:
            if not waiter.done():
                waiter.set_result(None)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def wait_until(self, predicate: Callable[[], bool], watch: Iterable[str] | None = None) -> None:
        """Return once ``predicate()`` holds, re-checking it after each change of a service in ``watch`` (None:
        after any change)."""
        keys: list[str | None] = [None] if watch is None else list(watch)
        loop = asyncio.get_running_loop()
        while not predicate():
            waiter: asyncio.Future[None] = loop.create_future()
            for key in keys:
                self._waiters.setdefault(key, set()).add(waiter)
            try:
                await waiter
            finally:
                for key in keys:
                    waiting = self._waiters.get(key)
                    if waiting is not None:
                        waiting.discard(waiter)
                        if not waiting:
                            del self._waiters[key]


def _dependencies(project: Project) -> dict[str, list[str]]:
    """The dependency graph: each service and the services it depends on."""
    return {name: list(svc.depends_on) for name, svc in project.services.items()}
