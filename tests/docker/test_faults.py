"""Frozen containers on a real engine: a container whose main process is stopped (SIGSTOP) or that is paused
cannot act on its stop signal, so ``stop`` kills it at once instead of waiting out the grace period; the engine
finds it unhealthy as fast as its healthcheck allows (a probe that times out is a failure) and replaces it."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import docker
import psutil
import pytest

from unistack.engine.events import Event
from unistack.engine.supervisor import Engine
from unistack.runtimes.docker.runtime import DockerRuntime

from .conftest import ProjectFactory
from .support import inspect, python_service, requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

# answers its healthcheck through a file it touches every 0.1 s: frozen, the file goes stale
SERVICE = "services:" + python_service(
    "app",
    """
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        open("/tmp/alive", "w").write(str(time.time()))
        time.sleep(0.1)
    """,
    extra="""    restart: on-failure
    stop_grace_period: 60s
    healthcheck:
      test: ["CMD", "python3", "-c", "import os, time; assert time.time() - os.stat('/tmp/alive').st_mtime < 0.5"]
      interval: 300ms
      timeout: 1s
      retries: 2
""",
)


async def freeze(pid: int) -> None:
    """SIGSTOP, and wait until the kernel shows it stopped (the signal is delivered asynchronously)."""
    os.kill(pid, signal.SIGSTOP)

    async def stopped() -> bool:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED

    await until(stopped, timeout=10, message=f"pid {pid} stopped")


def host_pid(client: docker.DockerClient, ident: str) -> int:
    return int(inspect(client, ident)["State"]["Pid"])


@pytest.mark.parametrize("how", ["sigstop", "pause"])
async def test_a_frozen_container_is_killed_at_once(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient, how: str
) -> None:
    project = projects(SERVICE)
    service = project.services["app"]
    await runtime.prepare(project)
    handle = await runtime.start(project, service)
    if how == "pause":
        client.api.pause(handle.ident)
    else:
        await freeze(host_pid(client, handle.ident))
    result = await runtime.stop(handle, "SIGTERM", 60)  # a grace period it could not use: none waited out
    assert result.frozen and result.killed and result.exit_code == 137, result
    assert not inspect(client, handle.ident)["State"]["Running"]


async def test_the_engine_replaces_a_frozen_container(projects: ProjectFactory, client: docker.DockerClient) -> None:
    project = projects(SERVICE)
    events: list[Event] = []
    runtime = DockerRuntime()
    engine = Engine(project, runtime, on_event=events.append)
    try:
        await engine.up(["app"])
        await until(_healthy(engine), timeout=60, message="app healthy")
        first = engine.status["app"].started_at
        await freeze(host_pid(client, engine.status["app"].handle.ident))  # type: ignore[union-attr]
        frozen_at = time.time()

        async def replaced() -> bool:
            st = engine.status["app"]
            return st.state == "healthy" and st.started_at != first

        try:
            await until(replaced, timeout=60, message="a new incarnation of app, healthy")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; events: {[(e.kind, e.message) for e in events]}") from None
        kinds = [(e.kind, e.message) for e in events if e.at >= frozen_at]
        assert ("killed", "app was frozen (stopped or paused) and was killed (SIGKILL) at once") in kinds, kinds
        assert engine.status["app"].restarts == 1
    finally:
        await engine.close(timeout=5)
        runtime.close()


def _healthy(engine: Engine):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        await asyncio.sleep(0)
        return engine.status["app"].state == "healthy"

    return check


async def exited_message(events: list[Event], name: str) -> str:
    """The message of the one ``exited`` event of ``name``, once it came."""

    async def exited() -> bool:
        await asyncio.sleep(0)
        return any(e.kind == "exited" and e.service == name for e in events)

    await until(exited, timeout=60, message=f"{name} exited")
    (message,) = [e.message for e in events if e.kind == "exited" and e.service == name]
    return message


async def test_a_container_the_oom_killer_ended_is_said_so(projects: ProjectFactory) -> None:
    # 512 MB asked of a 32 MB limit without swap: the kernel's OOM killer ends it (State.OOMKilled, exit code 137)
    hog = python_service("hog", "x = bytearray(512 * 2**20)", extra="    mem_limit: 32m\n    memswap_limit: 32m\n")
    project = projects("services:" + hog)
    events: list[Event] = []
    runtime = DockerRuntime()
    engine = Engine(project, runtime, on_event=events.append)
    try:
        await engine.up(["hog"])
        message = await exited_message(events, "hog")
        assert message.startswith("hog was killed by signal 9 (SIGKILL, exit code 137): out of memory"), message
        assert engine.status["hog"].exit_code == 137
    finally:
        await engine.close(timeout=5)
        runtime.close()


async def test_a_removed_container_is_said_removed(projects: ProjectFactory, client: docker.DockerClient) -> None:
    # `docker rm -f` by someone else: no exit code is left to read, and the event says why
    project = projects("services:" + python_service("gone", "import time\ntime.sleep(600)"))
    events: list[Event] = []
    runtime = DockerRuntime()
    engine = Engine(project, runtime, on_event=events.append)
    try:
        await engine.up(["gone"])

        async def running() -> bool:
            await asyncio.sleep(0)
            return engine.status["gone"].handle is not None

        await until(running, timeout=60, message="gone running")
        client.api.remove_container(engine.status["gone"].handle.ident, force=True)  # type: ignore[union-attr]
        message = await exited_message(events, "gone")
        assert message.startswith("gone exited (exit code unknown: the container was removed)"), message
    finally:
        await engine.close(timeout=5)
        runtime.close()
