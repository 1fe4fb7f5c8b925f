"""Seams for engine tests: a virtual clock and a scripted runtime. No processes, no real time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config.model import Dependency, Healthcheck, Project, RestartPolicy, Service, replace
from unistack.engine.events import Event
from unistack.engine.supervisor import Engine
from unistack.runtimes.base import Handle, ProbeResult, StopResult
from unistack.runtimes.logfiles import LogLine

EPOCH = 1_700_000_000.0


class FakeClock:
    """Virtual time: ``sleep`` parks the caller; ``settle``/``advance`` move time to the next wake-up."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return EPOCH + self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), next(self._seq), fut))
        await fut

    async def idle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, waking every sleeper due on the way."""
        target = self.t + seconds
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (target, next(self._seq), marker))
        await self.run_until(lambda: self.t >= target)

    async def run_until(self, predicate: Callable[[], bool], limit: float = 3600.0) -> None:
        """Advance virtual time wake-up by wake-up until ``predicate`` holds; fail past ``limit`` seconds."""
        await self.idle()
        while not predicate():
            live = [s for s in self._sleepers if not s[2].done()]
            self._sleepers = live
            heapq.heapify(self._sleepers)
            if not self._sleepers:
                raise AssertionError(f"nothing left to happen at t={self.t} and the condition is still false")
            wake, _, fut = heapq.heappop(self._sleepers)
            if wake > limit:
                raise AssertionError(f"condition still false at t={wake} (limit {limit})")
            self.t = max(self.t, wake)
            fut.set_result(None)
            await self.idle()


@dataclass
class Script:
    """How one fake service behaves."""

    exit_on_start: list[int | None] = field(default_factory=list)  # one entry per start: exit at once with it
    probes: Callable[[int], bool] = lambda n: True  # n-th probe (1-based, over the service's life) passes?
    probe_takes: Callable[[int], float] = lambda n: 0.0  # virtual seconds the n-th probe runs
    start_takes: float = 0.0  # virtual seconds the runtime takes to report a start (the handle has when it began)
    ignores_stop: bool = False  # stays up through the grace period and must be killed
    fail_start: bool = False
    cannot_start: bool = False  # the start fails in a way retrying cannot heal (PermanentFailure)
    fail_setup: bool = False
    outdated: str | None = None  # what ``outdated`` says of a live incarnation
    cannot_run_beside: bool = False  # ``beside`` refuses (a runtime that runs one incarnation only)
    beside_healthy: bool = True  # what the probes of a start-first update's new incarnation say
    exit_detail: str = ""  # what the runtime knows of an end beyond its exit code (Docker's OOMKilled)


class FakeRuntime:
    name = "fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.scripts: dict[str, Script] = {}
        self.calls: list[tuple[str, str, float]] = []  # (action, service, virtual time)
        self.exits: dict[str, asyncio.Future[int | None]] = {}
        self.probe_count: dict[str, int] = {}
        self.probe_times: dict[str, list[float]] = {}  # service -> virtual time each probe began
        self.live: dict[str, Handle] = {}
        self._ids = itertools.count(100)

    def script(self, service: str) -> Script:
        return self.scripts.setdefault(service, Script())

    def started(self, service: str) -> list[float]:
        return [t for action, s, t in self.calls if action == "start" and s == service]

    def crash(self, service: str, code: int) -> None:
        handle = self.live[service]
        self.exits[handle.ident].set_result(code)

    async def prepare(self, project: Project) -> None:
        self.calls.append(("prepare", "", self.clock.t))

    def setup_step(self, service: Service) -> str | None:
        if service.process is None or not service.process.setup:
            return None
        return " ".join(service.process.setup)

    async def setup(self, project: Project, service: Service) -> ProbeResult:
        self.calls.append(("setup", service.name, self.clock.t))
        ok = not self.script(service.name).fail_setup
        return ProbeResult(ok, 0 if ok else 1, "" if ok else "npm ERR! 404 left-pad")

    async def start(self, project: Project, service: Service) -> Handle:
        from unistack.errors import PermanentFailure, RuntimeFailure

        script = self.script(service.name)
        self.calls.append(("start", service.name, self.clock.t))
        if script.cannot_start:
            raise PermanentFailure("command not found: 'nope' (x-unistack.process.command)")
        if script.fail_start:
            raise RuntimeFailure("cannot connect to the engine")
        ident = str(next(self._ids))
        handle = Handle(service.name, ident, self.clock.wall(), record={"pid": int(ident)})
        if script.start_takes:
            await self.clock.sleep(script.start_takes)
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.exits[ident] = fut
        self.live[service.name] = handle
        if script.exit_on_start:
            fut.set_result(script.exit_on_start.pop(0))
        return handle

    def beside(self, project: Project, service: Service) -> Service:
        from unistack.errors import NotSupported

        if self.script(service.name).cannot_run_beside:
            raise NotSupported("the fake runs one incarnation only")
        return replace(service, environment={**service.environment, "BESIDE": "1"})

    async def switch(self, project: Project, service: Service, beside: Service) -> None:
        self.calls.append(("switch", service.name, self.clock.t))

    async def settle(self, project: Project, service: Service, beside: Service) -> None:
        self.calls.append(("settle", service.name, self.clock.t))

    async def finish_update(self, project: Project, service: Service, new: Handle) -> None:
        self.calls.append(("finish_update", service.name, self.clock.t))

    async def outdated(self, project: Project, service: Service, handle: Handle) -> str | None:
        return self.script(service.name).outdated

    async def wait(self, handle: Handle) -> int | None:
        return await asyncio.shield(self.exits[handle.ident])

    def exit_detail(self, handle: Handle) -> str:
        return self.script(handle.service).exit_detail

    def unknown_exit(self, handle: Handle) -> str:
        return "not a child of this daemon" if handle.adopted else "the runtime could not tell it"

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        n = self.probe_count[service.name] = self.probe_count.get(service.name, 0) + 1
        self.probe_times.setdefault(service.name, []).append(self.clock.t)
        if takes := self.script(service.name).probe_takes(n):
            await self.clock.sleep(takes)
        ok = self.script(service.name).probes(n)
        if "BESIDE" in service.environment:  # the new incarnation of a start-first update
            ok = self.script(service.name).beside_healthy
        return ProbeResult(ok, 0 if ok else 1, "ok" if ok else f"probe {n} failed")

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        self.calls.append(("stop", handle.service, self.clock.t))
        fut = self.exits[handle.ident]
        killed = False
        if self.script(handle.service).ignores_stop and not fut.done():
            await self.clock.sleep(grace)
            killed = True
        if not fut.done():
            fut.set_result(137 if killed else 0)
        return StopResult(killed, fut.result())

    async def adopt(self, project: Project, service: Service, record: dict[str, Any]) -> Handle | None:
        return None

    async def strays(self, state_dir: Path, known: set[str]) -> list[Handle]:
        return []

    async def tail(self, project: Project, service: str, lines: int) -> list[str]:
        return [f"{service} says goodbye"]

    async def housekeeping(self, project: Project) -> None:
        return None

    def logs(self, project: Project, services: Sequence[str], tail: int | None, follow: bool) -> AsyncIterator[LogLine]:
        raise NotImplementedError

    async def cleanup(self, project: Project, remove_volumes: bool) -> None:
        return None


def service(
    name: str,
    *,
    depends_on: dict[str, str | Dependency] | None = None,
    healthcheck: bool = False,
    restart: str = "no",
    max_attempts: int | None = None,
    retries: int = 3,
    start_period: float = 0.0,
    grace: float = 10.0,
) -> Service:
    deps = {
        k: v if isinstance(v, Dependency) else Dependency(condition=v)  # type: ignore[arg-type]
        for k, v in (depends_on or {}).items()
    }
    check = (
        Healthcheck(
            kind="CMD",
            test=("true",),
            interval=5,
            timeout=1,
            retries=retries,
            start_period=start_period,
            start_interval=1,
        )
        if healthcheck
        else None
    )
    return Service(
        name=name,
        depends_on=deps,
        healthcheck=check,
        restart=RestartPolicy(mode=restart, max_attempts=max_attempts),  # type: ignore[arg-type]
        stop_grace_period=grace,
    )


def project(*services: Service, notify: Sequence[Any] = ()) -> Project:
    return Project(
        name="demo",
        environment="local",
        working_dir=Path("/nonexistent"),
        files=(),
        state_dir=Path("/nonexistent/.unistack/demo"),
        services={s.name: s for s in services},
        notify=tuple(notify),
    )


def engine_of(
    runtime: FakeRuntime, clock: FakeClock, *services: Service, notify: Sequence[Any] = ()
) -> tuple[Engine, list[Event]]:
    """An engine over ``services`` on the fake runtime and clock, and the list its events are appended to."""
    events: list[Event] = []
    engine = Engine(project(*services, notify=notify), runtime, clock=clock, on_event=events.append)
    return engine, events


def pg_dump_header(version: tuple[int, int, int], server: str, int_size: int = 4, database: str = "app") -> bytes:
    """A header as pg_dump writes it (PostgreSQL's WriteHead), for archive versions this machine's pg_dump lacks."""

    def integer(value: int) -> bytes:
        return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(int_size, "little")

    def text(value: str) -> bytes:
        data = value.encode()
        return integer(len(data)) + data

    head = b"PGDMP" + bytes(version) + bytes([int_size, 8, 1])
    head += bytes([1]) if version >= (1, 15, 0) else integer(-1)  # the algorithm (gzip), or the level (default)
    head += b"".join(integer(v) for v in (7, 6, 5, 4, 3, 126, 0))  # seconds ... year since 1900, daylight saving
    return head + text(database) + text(server) + text("17.2") + b"\x19\x00\x00\x00\x00"
