"""A healthcheck that the runtime ends (it timed out, or a stop cancelled it) leaves no orphan in the container.

Killing only a check's main process hands its children to the container's PID 1. When PID 1 is the service itself
(PostgreSQL in the stack's image) it reaps them as its own: PostgreSQL took an orphaned ``pg_isready`` that died of
SIGPIPE for a crashed backend and aborted its shutdown checkpoint (bench/cycles.py under load: "server process was
terminated by signal 13", "abnormal database system shutdown", then crash recovery at the next start). The check
here is ``sh`` waiting for a ``sleep``: the old ``abandon`` killed ``sh`` and left ``sleep`` to PID 1.
"""

from __future__ import annotations

import asyncio

import docker
import psutil
import pytest

from unistack.config.model import Healthcheck
from unistack.runtimes.docker.runtime import DockerRuntime

from .conftest import ProjectFactory
from .support import inspect, python_service, requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

SERVICE = "services:" + python_service(
    "app",
    """
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(1)
    """,
    extra="    init: false\n",
)
CHECK = Healthcheck(kind="CMD", test=["sh", "-c", "sleep 30; exit 0"], timeout=0.5)


def orphans(client: docker.DockerClient, ident: str) -> list[str]:
    """What the container's PID 1 has as children (it starts none itself)."""
    pid = int(inspect(client, ident)["State"]["Pid"])
    return [" ".join(child.cmdline()) for child in psutil.Process(pid).children()]


def check_processes(client: docker.DockerClient, ident: str) -> list[str]:
    """The check's processes still alive in the container (``docker top``)."""
    rows = client.api.top(ident, ps_args="-eo pid,args").get("Processes") or []
    return [row[-1] for row in rows if "sleep 30" in row[-1]]


@pytest.mark.parametrize("how", ["timed out", "cancelled"])
async def test_an_ended_check_leaves_no_orphan_to_pid_1(
    how: str, projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(SERVICE)
    service = project.services["app"]
    await runtime.prepare(project)
    handle = await runtime.start(project, service)
    try:
        if how == "timed out":
            result = await runtime.probe(project, service, handle, CHECK)
            assert not result.ok and "timed out" in result.output
        else:  # what a stop does to the probe in flight: its task is cancelled
            long_check = Healthcheck(kind="CMD", test=CHECK.test, timeout=60)
            probing = asyncio.create_task(runtime.probe(project, service, handle, long_check))

            async def started() -> bool:
                return bool(check_processes(client, handle.ident))

            await until(started, timeout=20, message="the check runs")
            probing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probing

        async def main_gone() -> bool:  # the check's own process (sh); what it started may outlive it
            return not any(args.startswith("sh ") for args in check_processes(client, handle.ident))

        await until(main_gone, timeout=10, message="the check's main process ended")
        assert orphans(client, handle.ident) == []  # the old way: ["sleep 30"], now a child of the service
        assert check_processes(client, handle.ident) == []
    finally:
        await runtime.stop(handle, "SIGTERM", 5)
