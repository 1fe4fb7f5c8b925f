"""The engine: one asyncio task per service, gated on its dependencies, healed by the restart policy.

Owns each service's state machine (``created -> starting -> running | healthy | unhealthy -> exited | fatal |
stopped``, plus ``blocked`` while a dependency will not become available), dependency conditions, health
probing through the runtime, restarts with backoff, the ``service_fatal`` event, stop in reverse dependency
order, and reconciling a running instance with a changed project. It sees only the Runtime protocol and the
Clock; it never imports subprocess, docker or sockets, and never formats output (events do that job).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from unistack import graph
from unistack.config.model import Dependency, Project, replace
from unistack.engine import policy, rollout
from unistack.engine.clock import Clock, SystemClock
from unistack.engine.events import Event, EventKind, iso
from unistack.engine.health import CheckRecord, HealthTracker
from unistack.engine.states import LIVE, ServiceRow
from unistack.engine.status import ServiceStatus, WaitReport, dependency_verdict
from unistack.errors import NotSupported, PermanentFailure, RuntimeFailure
from unistack.runtimes.base import Handle, ProbeResult, Runtime, StopResult

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
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # wake-ups: the futures of tasks waiting in ``_wait_until``, by the service whose change they wait for
        # (None: any change); a change wakes only those, synchronously (no lock, no task per change)
        self._waiters: dict[str | None, set[asyncio.Future[None]]] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        # why a service's last start cannot succeed by retrying (PermanentFailure): it went fatal at once
        self._cannot_start: dict[str, str] = {}
        # services a ``restart`` is stopping to start again: still wanted (a daemon killed meanwhile is replaced by
        # one that finishes the restart, instead of one that leaves them stopped)
        self.restarting: set[str] = set()

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
            task = self._tasks.get(name)
            if task is not None and not task.done():
                continue
            st = self.status[name]
            if name not in adopted:  # a new runner: nothing of the previous incarnation counts any more
                st.state, st.health, st.reason, st.exit_code = "created", "none", "", None
            st.attempts = 0  # and a fresh restart budget
            runner = self._run(name, adopted.get(name), setup)
            self._tasks[name] = asyncio.create_task(runner, name=f"service:{name}")
        self._changed_now()  # who is supervised changed: an optional dependency may now be waited for

    async def stop(self, services: Iterable[str] | None = None, timeout: float | None = None) -> None:
        """Stop services (all when None) in reverse dependency order, as Compose's ``stop`` does."""
        g = self.graph()
        names = set(g) if services is None else set(services)
        for layer in reversed(graph.layers(g)):
            await asyncio.gather(*(self._stop_one(n, timeout) for n in layer if n in names))

    async def restart(self, services: Iterable[str] | None = None, timeout: float | None = None) -> None:
        """Stop then start the named services (and dependents that ask ``restart: true`` on them), as Compose's
        ``restart`` does: their dependencies are left as they are, and nothing is set up (built) again."""
        g = self.graph()
        names = set(services or g)
        for name in list(names):
            names |= self._restart_followers(name)
        wanted = names - self.restarting
        self.restarting |= wanted
        try:
            for layer in reversed(graph.layers(g)):
                await asyncio.gather(*(self._stop_one(n, timeout) for n in layer if n in names))
            await self.up(names, with_dependencies=False, setup=False)
        finally:
            self.restarting -= wanted

    async def reconcile(self, project: Project, services: Iterable[str] | None = None) -> dict[str, str]:
        """Bring a running instance in line with ``project`` as Compose's ``up`` does.

        Removed services are stopped, changed ones recreated, missing ones started. Returns what was done.
        """
        done: dict[str, str] = {}
        old = self.project
        removed = [n for n in old.services if n not in project.services]
        changed = [n for n in project.services if n in old.services and old.services[n] != project.services[n]]
        candidates = [n for n in self.selection(services, project) if n in old.services and n not in changed]
        outdated = await self._outdated(project, candidates)
        kept = await self._set_up_replacements(project, outdated)
        done.update(kept)
        changed += [n for n in outdated if n not in kept]
        if removed:
            await self.stop(removed)
            done.update(dict.fromkeys(removed, "removed"))
        rolling = [n for n in changed if self._rolls_start_first(project, n, done)]
        changed = [n for n in changed if n not in rolling]
        if changed:
            await self.stop([n for n in changed if self._is_live(n)])
        self.project = project
        for name in removed:
            self.status.pop(name, None)
            self._tasks.pop(name, None)
        for name in project.services:
            self.status.setdefault(name, ServiceStatus(name))
        for name in changed:
            done[name] = f"recreated ({outdated[name]})" if name in outdated else "recreated"
            self.status[name] = ServiceStatus(name)  # Compose resets a recreated container's counters
        selected = self.selection(services)
        for name in selected:
            task = self._tasks.get(name)
            if (task is None or task.done()) and name not in done:
                done[name] = "started"
        await self.up(selected)
        if rolling:
            await self._roll(rolling, done, old)
        return done

    def _rolls_start_first(self, project: Project, name: str, done: dict[str, str]) -> bool:
        """Whether changed ``name`` is replaced start-first (``rollout.plan``); why not goes in ``done``."""
        st = self.status[name]
        chosen = rollout.plan(project.services[name], st.state == "healthy" and self._is_live(name))
        if chosen.reason:
            done[name] = f"recreated stop-first ({chosen.reason})"
        return chosen.order == "start-first"

    async def _roll(self, names: list[str], done: dict[str, str], old: Project) -> None:
        """Replace ``names`` start-first, all at once; a runtime that cannot run two incarnations gets them
        replaced stop-first instead; every failed update named together (the old incarnations keep serving)."""
        results = await asyncio.gather(*(rollout.roll(self, n) for n in names), return_exceptions=True)
        failed: list[str] = []
        fallback: list[str] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, NotSupported):
                done[name] = f"recreated stop-first ({result})"
                fallback.append(name)
            elif isinstance(result, rollout.RolloutFailed):
                done[name] = "kept: the update failed"
                failed.append(str(result))
                # the old incarnation keeps serving, so its version is the one running: what a restart starts
                # again and what a new daemon adopts (the next `up` tries the update again)
                self.project = replace(self.project, services={**self.project.services, name: old.services[name]})
            elif isinstance(result, BaseException):
                raise result
            else:
                done[name] = result
        if fallback:
            await self.stop(fallback)
            for name in fallback:
                self.status[name] = ServiceStatus(name)
            await self.up(fallback, with_dependencies=False)
        if failed:
            raise rollout.RolloutFailed("\n".join(failed))

    # ----------------------------------------------------------------- for engine/rollout.py

    def emit(self, kind: EventKind, service: str | None, message: str, /, **data: Any) -> None:
        self._emit(kind, service, message, **data)

    async def tail(self, name: str) -> list[str]:
        return await self._tail(name)

    async def stop_runner(self, name: str) -> None:
        """Stop the service's runner and its incarnation (stop signal, grace period), as ``stop`` does."""
        await self._stop_one(name, None)

    async def wait_ready(self, services: Iterable[str] | None = None, timeout: float | None = None) -> WaitReport:
        """Wait until every selected service is ready, or one failed, or ``timeout`` seconds passed."""
        names = self.selection(services)

        def settled() -> bool:
            return all(self._ready_or_failed(n) for n in names)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    await self._wait_until(settled, names)
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
            elif self._ready_or_failed(name):
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
            self._emit("killed", handle.service, f"{handle.service} killed (SIGKILL) on request")
        await asyncio.gather(*(self.runtime.stop(h, "SIGKILL", 0.0) for h in handles), return_exceptions=True)

    async def _outdated(self, project: Project, names: Iterable[str]) -> dict[str, str]:
        """The live services (of those, unchanged in the files) whose incarnation the runtime says is out of date
        (a rebuilt image), with why. One the runtime cannot check is left running as it is."""
        live = {n: h for n in names if n in self.project.services and (h := self.status[n].handle) is not None}
        reasons = await asyncio.gather(
            *(self.runtime.outdated(project, project.services[n], h) for n, h in live.items()), return_exceptions=True
        )
        return {name: why for name, why in zip(live, reasons, strict=True) if isinstance(why, str)}

    async def _set_up_replacements(self, project: Project, outdated: dict[str, str]) -> dict[str, str]:
        """Run the setup step (the build) of each outdated service's replacement while the old incarnation still
        runs, so it is down only for the restart. Those whose setup fails keep running as they are: returned with
        why (the new setup runs again, quickly, when the runner starts the replacement)."""

        async def one(name: str) -> str | None:
            result = await self._set_up(project, name, f" its replacement ({outdated[name]})")
            if result is None or result.ok:
                return None
            last = result.output.strip().splitlines()[-1:] or [f"exit code {result.exit_code}"]
            self._emit("error", name, f"{name} keeps running as it was: its setup failed: {last[0]}")
            return f"not recreated: its setup failed ({last[0]})"

        results = await asyncio.gather(*(one(name) for name in outdated))
        return {name: why for name, why in zip(outdated, results, strict=True) if why is not None}

    async def close(self, timeout: float | None = None) -> None:
        """Stop everything and end every runner."""
        await self.stop(None, timeout)

    def is_wanted(self, name: str) -> bool:
        """True while a runner owns the service (starting, running, waiting or backing off) or a ``restart`` is
        replacing it."""
        return self._is_live(name) or name in self.restarting

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
        lines = await self._tail(name) if name not in self._cannot_start else []  # nothing ran: old lines
        if lines and st.state in {"exited", "fatal", "unhealthy", "starting"}:
            parts.append("last log lines:\n    " + "\n    ".join(lines[-10:]))
        return "; ".join(parts)

    # ----------------------------------------------------------------- runner

    async def _run(self, name: str, adopted: Handle | None, setup: bool = True) -> None:
        st = self.status[name]
        try:
            if adopted is None:
                if (setup and not await self._setup(name)) or not await self._wait_dependencies(name):
                    return
                handle = await self._start(name)
            else:
                handle = adopted
                # healthy as the previous supervisor last saw this very incarnation (adopt() matched its record):
                # stays ready for dependents and `--wait` across a handover; the next probe says otherwise if need be
                was_healthy = st.state == "healthy"
                st.handle, st.started_at, st.state = handle, handle.started_at, "running"
                svc = self.project.services[name]
                if svc.healthcheck is not None:
                    st.state, st.health = ("healthy", "healthy") if was_healthy else ("starting", "starting")
                self._emit("adopted", name, f"{name} adopted (pid/container {handle.ident})")
            while True:
                if handle is None and name in self._cannot_start:  # retrying cannot heal it: fatal at once
                    await self._go_fatal(name, None, f"could not start: {self._cannot_start[name]}", with_logs=False)
                    return
                if handle is None:
                    exit_code: int | None = None
                    unhealthy = False
                    ran_for = 0.0
                else:
                    began = self.clock.now() - max(0.0, self.clock.wall() - handle.started_at)
                    exit_code, unhealthy = await self._supervise(name, handle)
                    ran_for = self.clock.now() - began
                svc = self.project.services[name]
                st.attempts = policy.attempts_after_run(svc.restart, st.attempts, ran_for)
                decision = policy.decide(svc.restart, exit_code=exit_code, unhealthy=unhealthy, attempts=st.attempts)
                reason = decision.reason if handle is not None else f"could not start: {st.reason}; {decision.reason}"
                if decision.action == "exit":
                    st.state, st.reason, st.handle = "exited", reason, None
                    self._changed_now(name)
                    return
                if decision.action == "fatal":
                    await self._go_fatal(name, exit_code, reason)
                    return
                st.attempts += 1
                st.restarted(self.clock.wall())
                st.state, st.health, st.reason = "restarting", "none", decision.reason
                self._emit(
                    "restarting",
                    name,
                    f"{name} {decision.reason}" + (f" in {decision.delay:g}s" if decision.delay else " now"),
                    delay=decision.delay,
                    attempt=st.attempts,
                )
                await self.clock.sleep(decision.delay)
                handle = await self._start(name)
                if handle is not None:
                    for follower in self._restart_followers(name):
                        self._background(self._restart_follower(follower, name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected runtime error must not kill the supervisor silently
            st.state, st.reason = "fatal", f"supervisor error: {exc!r}"
            self._emit("error", name, f"{name}: supervisor error: {exc!r}")

    async def _setup(self, name: str) -> bool:
        """Run the service's setup step (in parallel with waiting services); a failure makes it fatal."""
        if self.runtime.setup_step(self.project.services[name]) is None:
            return True
        self.status[name].reason = "setting up"  # still "created": nothing runs yet, so service_started is not met
        result = await self._set_up(self.project, name)
        if result is None or result.ok:
            return True
        await self._go_fatal(name, result.exit_code, f"setup failed with exit code {result.exit_code}")
        return False

    async def _set_up(self, project: Project, name: str, what: str = "") -> ProbeResult | None:
        """Run the service's setup step (of ``project``'s version of it), announced and reported in events; None
        when it has none."""
        svc = project.services[name]
        step = self.runtime.setup_step(svc)
        if step is None:
            return None
        self._emit("setup", name, f"{name} setting up{what}: {step}")
        result = await self.runtime.setup(project, svc)
        if result.ok:
            self._emit("setup", name, f"{name} set up")
        return result

    async def _start(self, name: str) -> Handle | None:
        st, svc = self.status[name], self.project.services[name]
        st.state, st.reason, st.exit_code = "starting", "", None
        st.health = "starting" if svc.healthcheck else "none"
        self._cannot_start.pop(name, None)
        self._emit("starting", name, f"{name} starting")
        starting = asyncio.ensure_future(self.runtime.start(self.project, svc))
        try:
            handle = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # never lose an incarnation that was being started: hand it to the stop path
            with contextlib.suppress(Exception):
                st.handle = await starting
            raise
        except PermanentFailure as exc:  # the runner makes it fatal, in one event
            st.reason, st.handle, st.health = str(exc), None, "none"
            self._cannot_start[name] = str(exc)
            return None
        except RuntimeFailure as exc:
            st.reason = str(exc)
            self._emit("error", name, f"{name} could not start: {exc}")
            st.handle = None
            return None
        st.handle, st.started_at = handle, handle.started_at
        st.state = "starting" if svc.healthcheck else "running"
        self._emit("started", name, f"{name} started ({handle.ident})", ident=handle.ident)
        return handle

    async def _supervise(self, name: str, handle: Handle) -> tuple[int | None, bool]:
        """Run until the incarnation exits (exit code, False) or turns unhealthy and is stopped (code, True)."""
        svc = self.project.services[name]
        exited = asyncio.create_task(self.runtime.wait(handle), name=f"wait:{name}")
        probing: asyncio.Task[None] | None = None
        if svc.healthcheck is not None:
            probing = asyncio.create_task(self._probe_loop(name, handle), name=f"health:{name}")
        try:
            waiters: set[asyncio.Task[Any]] = {exited} | ({probing} if probing else set())
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                code = exited.result()
                await self._on_exit(name, code)
                return code, False
            # the probe loop ended: the service is unhealthy and the policy may restart it
            if svc.restart.mode == "no":
                # Compose semantics: an unhealthy service keeps running; keep watching its exit only
                if probing is not None:
                    probing = asyncio.create_task(self._probe_loop(name, handle, forever=True))
                code = await exited
                await self._on_exit(name, code)
                return code, False
            exited.cancel()
            result = await self.runtime.stop(handle, svc.stop_signal, svc.stop_grace_period)
            self._report_kill(name, result, svc.stop_grace_period)
            self.status[name].handle = None
            return result.exit_code, True
        finally:
            pending = {task for task in (exited, probing) if task is not None and not task.done()}
            for task in pending:
                task.cancel()
            if pending:  # bounded: a helper task that ignores its cancellation must not hang a stop
                await asyncio.wait(pending, timeout=5)

    async def _on_exit(self, name: str, code: int | None) -> None:
        st = self.status[name]
        st.exit_code, st.handle = code, None
        st.health = "none" if st.health == "none" else st.health
        message = f"{name} exited with code {code}"
        data: dict[str, Any] = {"exit_code": code}
        if code != 0:
            lines = await self._tail(name)
            if lines:
                message += "; last log lines:\n    " + "\n    ".join(lines[-10:])
            data["last_logs"] = lines
        self._emit("exited", name, message, **data)

    async def _probe_loop(self, name: str, handle: Handle, forever: bool = False) -> None:
        """Probe until the service turns unhealthy (return), or forever when asked."""
        svc = self.project.services[name]
        check = svc.healthcheck
        assert check is not None
        st = self.status[name]
        started = self.clock.now() - max(0.0, self.clock.wall() - handle.started_at)
        tracker = HealthTracker(check, started=started)
        if forever:
            tracker.status, tracker.ever_healthy = st.health, True
        # probes are due on a grid of intervals counted from the incarnation's start (a new one: however long the
        # runtime took to report it) or from now: neither the time a probe takes nor a late wake-up on a busy
        # machine shifts the ones after it; an overdue probe runs at once, and the grid keeps its phase
        grid = started if not forever and not handle.adopted else self.clock.now()  # the last point of the grid
        while True:
            now = self.clock.now()
            step = tracker.next_delay(now)
            grid += step
            if grid > now:
                await self.clock.sleep(grid - now)
            elif step > 0:
                grid += (now - grid) // step * step
            result = await self.runtime.probe(self.project, svc, handle, check)
            st.last_check = CheckRecord(self.clock.wall(), result.ok, result.exit_code, result.output[-2000:])
            change = tracker.record(result.ok, self.clock.now())
            if change is None:
                if not result.ok and tracker.failures:
                    self._emit(
                        "check_failed",
                        name,
                        f"{name} check failed ({tracker.failures}/{check.retries or 3}): "
                        + result.output.strip()[-200:],
                    )
                if st.state == "unhealthy":  # a dependent's "blocked" reason quotes the latest check output
                    self._changed_now(name)
                else:  # nobody's condition changed: no need to wake anyone
                    self.on_change()
                continue
            st.health = change
            if change == "healthy":
                st.state = "healthy"
                self._emit("healthy", name, f"{name} is healthy")
            else:
                st.state = "unhealthy"
                self._emit(
                    "unhealthy",
                    name,
                    f"{name} is unhealthy after {tracker.failures} failed checks: {result.output.strip()[-300:]}",
                    exit_code=result.exit_code,
                )
                if not forever:
                    return

    async def _go_fatal(self, name: str, exit_code: int | None, reason: str, with_logs: bool = True) -> None:
        """Fatal, dependents blocked, notifiers told. ``with_logs`` False: the message leaves out the log's last lines
        (nothing ran: they would be an earlier incarnation's); the event still carries them."""
        st = self.status[name]
        st.state, st.reason, st.handle = "fatal", reason, None
        lines = await self._tail(name)
        check = st.last_check
        payload = {
            "event": "service_fatal",
            "project": self.project.name,
            "service": name,
            "attempts": st.attempts,
            "restarts": st.restarts,
            "exit_code": exit_code,
            "reason": reason,
            "last_check": None
            if check is None
            else {"at": iso(check.at), "ok": check.ok, "exit_code": check.exit_code, "output": check.output},
            "last_logs": lines,
            "at": iso(self.clock.wall()),
        }
        tail = "; last log lines:\n    " + "\n    ".join(lines[-10:]) if lines and with_logs else ""
        self._emit("fatal", name, f"{name} is fatal: {reason}{tail}", **payload)

    # ----------------------------------------------------------------- dependencies

    async def _wait_dependencies(self, name: str) -> bool:
        """Wait until every dependency meets its condition. Marks the service blocked while one cannot."""
        svc = self.project.services[name]
        st = self.status[name]
        announced: set[str] = set()
        if svc.depends_on:
            # runners begin in start order, in one go: let those with nothing to wait for get their processes
            # started before the others announce (and log) what they wait for
            await asyncio.sleep(0)

        def check() -> bool:
            verdicts = {dep: self._dependency_verdict(dep, want) for dep, want in svc.depends_on.items()}
            if news := [dep for dep, verdict in verdicts.items() if verdict == "wait" and dep not in announced]:
                announced.update(news)  # one event for all a service begins to wait for, however many
                waits = ", ".join(f"{dep} ({svc.depends_on[dep].condition})" for dep in news)
                self._emit("waiting", name, f"{name} waits for {waits}")
            problems = [v for v in verdicts.values() if v not in {"ok", "wait"}]
            if problems:
                if st.state != "blocked" or st.reason != problems[0]:
                    st.state, st.reason = "blocked", problems[0]
                    self._emit("blocked", name, f"{name} is blocked: {problems[0]}")
                return False
            if st.state == "blocked":
                st.state, st.reason = "created", ""
                self._changed_now(name)
            return all(v == "ok" for v in verdicts.values())

        await self._wait_until(check, svc.depends_on)
        return True

    def _dependency_verdict(self, dep: str, want: Dependency) -> str:
        return dependency_verdict(
            dep, want, self.status.get(dep), self.project.services.get(dep), supervised=dep in self._tasks
        )

    def _ready_or_failed(self, name: str) -> bool:
        st, svc = self.status[name], self.project.services[name]
        if st.ready(svc) or st.failed():
            return True
        return st.state == "unhealthy" and svc.restart.mode == "no"

    def _restart_followers(self, name: str) -> set[str]:
        return {n for n, s in self.project.services.items() if (d := s.depends_on.get(name)) and d.restart}

    async def _restart_follower(self, follower: str, cause: str) -> None:
        if not self._is_live(follower):
            return
        self._emit("restarting", follower, f"{follower} restarts because {cause} restarted")
        await self.restart([follower])

    # ----------------------------------------------------------------- stop

    def _is_live(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def _stop_one(self, name: str, timeout: float | None) -> None:
        task = self._tasks.get(name)
        st = self.status.get(name)
        if st is None:
            return
        if task is not None and not task.done():
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=RUNNER_STOP_TIMEOUT)
            if not done:  # a bug, but the process must still be stopped: go on with what the runner left
                self._emit("error", name, f"{name}: its supervisor task did not end; stopping the process anyway")
        handle = st.handle
        if handle is None:
            if st.state in {"created", "blocked", "starting"}:
                st.state = "stopped"
                self._changed_now(name)
            return
        svc = self.project.services[name]
        grace = svc.stop_grace_period if timeout is None else timeout
        self._emit("stopping", name, f"{name} stopping ({svc.stop_signal}, grace {grace:g}s)")
        # one loop turn before the signal: what the event scheduled runs first (the daemon saves the stop as begun,
        # so a daemon killed from here on leaves the next one a stop to finish, never a service signalled unsaid)
        await asyncio.sleep(0)
        result = await self.runtime.stop(handle, svc.stop_signal, grace)
        st.handle, st.exit_code = None, result.exit_code
        st.state, st.health = "stopped", "none"
        self._report_kill(name, result, grace)
        self._emit("stopped", name, f"{name} stopped", exit_code=result.exit_code)

    def _report_kill(self, name: str, result: StopResult, grace: float) -> None:
        if result.frozen:
            self._emit("killed", name, f"{name} was frozen (stopped or paused) and was killed (SIGKILL) at once")
        elif result.killed:
            self._emit("killed", name, f"{name} did not stop within {grace:g}s and was killed (SIGKILL)")

    # ----------------------------------------------------------------- plumbing

    async def _tail(self, name: str) -> list[str]:
        try:
            return await self.runtime.tail(self.project, name, LOG_TAIL)
        except RuntimeFailure:
            return []

    def _emit(self, kind: EventKind, service: str | None, message: str, /, **data: Any) -> None:
        self.on_event(Event(kind, service, message, self.clock.wall(), data))
        if kind in {"waiting", "check_failed"}:  # news, not a change of state: nobody's condition changed
            self.on_change()
        else:
            self._changed_now(service)

    def _changed_now(self, service: str | None = None) -> None:
        """Something about ``service`` (None: anything) changed: wake the tasks whose condition may now hold."""
        self.on_change()
        if service is None:
            woken = set().union(*self._waiters.values())
        else:
            woken = self._waiters.get(service, set()) | self._waiters.get(None, set())
        for waiter in woken:
            if not waiter.done():
                waiter.set_result(None)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _wait_until(self, predicate: Callable[[], bool], watch: Iterable[str] | None = None) -> None:
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
