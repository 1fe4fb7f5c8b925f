"""DockerRuntime on a real engine: start, probe, wait, stop, restart, recreate, adopt, strays."""

from __future__ import annotations

import time
from pathlib import Path

import docker.errors
import pytest

from unistack.config.model import Healthcheck
from unistack.runtimes.base import StopResult
from unistack.runtimes.docker.runtime import DockerRuntime

from .conftest import ProjectFactory
from .support import inspect, python_service, requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

# PID 1 in a container ignores SIGTERM unless it handles it: this one handles it and exits 0
SERVICE = "services:" + python_service(
    "app",
    """
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("hello from app", flush=True)
    time.sleep(600)
    """,
)

STUBBORN = "services:" + python_service(
    "app",
    """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ignoring TERM", flush=True)
    time.sleep(600)
    """,
)


def check(kind: str, *test: str, timeout: float = 5.0) -> Healthcheck:
    return Healthcheck(kind=kind, test=test, timeout=timeout)  # type: ignore[arg-type]


async def test_start_probe_and_stop(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(SERVICE)
    service = project.services["app"]
    await runtime.prepare(project)
    handle = await runtime.start(project, service)
    assert handle.record["id"] == handle.ident and handle.record["name"] == f"{project.name}-app-1"

    ok = await runtime.probe(project, service, handle, check("CMD", "python3", "-c", "print('fine')"))
    assert ok.ok and ok.exit_code == 0 and ok.output.strip() == "fine"
    bad = await runtime.probe(project, service, handle, check("CMD-SHELL", "echo sick >&2; exit 3"))
    assert not bad.ok and bad.exit_code == 3 and "sick" in bad.output
    # the probe answers once the check is ended: the engine may start it after the timeout (under load), and then
    # it is ended as soon as it shows (tests/unit/test_docker_healthchecks.py); "timed out": it never waited 30 s
    slow = await runtime.probe(project, service, handle, check("CMD", "sleep", "30", timeout=0.5))
    assert not slow.ok and "timed out" in slow.output

    async def check_process_gone() -> bool:
        return not any("sleep 30" in " ".join(row) for row in client.api.top(handle.ident)["Processes"])

    # well within the check's 30 s: it was killed, not left to end on its own
    await until(check_process_gone, timeout=15, message="the timed-out check's process to be killed")
    missing = await runtime.probe(project, service, handle, check("CMD", "no-such-program"))
    assert not missing.ok

    result = await runtime.stop(handle, "SIGTERM", 10)
    assert result.killed is False and result.exit_code == 0
    stopped = await runtime.probe(project, service, handle, check("CMD", "true"))
    assert not stopped.ok and "not running" in stopped.output


async def test_wait_returns_the_exit_code_even_after_the_fact(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(
        """
services:
  job:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "echo working; exit 7"]
"""
    )
    await runtime.prepare(project)
    handle = await runtime.start(project, project.services["job"])
    assert await runtime.wait(handle) == 7
    assert await runtime.wait(handle) == 7  # long gone: still known from the container's state
    assert await runtime.tail(project, "job", 5) == ["working"]
    assert await runtime.stop(handle, "SIGINT", 5) == StopResult(killed=False, exit_code=7)
    client.api.remove_container(handle.ident)
    assert await runtime.wait(handle) is None  # removed behind our back
    assert await runtime.stop(handle, "SIGTERM", 5) == StopResult(killed=False, exit_code=None)


async def test_stop_kills_after_the_grace_period(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects(STUBBORN)
    await runtime.prepare(project)
    handle = await runtime.start(project, project.services["app"])
    await until(lambda: runtime.tail(project, "app", 1), message="the service to print")
    began = time.monotonic()
    result = await runtime.stop(handle, "15", 1.0)
    took = time.monotonic() - began
    assert result.killed is True and result.exit_code == 137
    assert 0.9 < took < 8


async def test_restart_reuses_the_container_and_its_log(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(SERVICE)
    service = project.services["app"]
    await runtime.prepare(project)
    first = await runtime.start(project, service)
    await until(lambda: runtime.tail(project, "app", 5), message="the first incarnation to print")
    await runtime.stop(first, "SIGTERM", 10)
    second = await runtime.start(project, service)
    assert second.ident == first.ident
    lines = await until(
        lambda: _when(runtime.tail(project, "app", 10), lambda got: got.count("hello from app") == 2),
        message="the second incarnation to print",
    )
    assert lines == ["hello from app", "hello from app"]
    await runtime.stop(second, "SIGTERM", 10)


async def test_a_changed_configuration_recreates_the_container(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(SERVICE)
    await runtime.prepare(project)
    first = await runtime.start(project, project.services["app"])
    await runtime.stop(first, "SIGTERM", 10)
    changed = projects(SERVICE + "      EXTRA: '1'\n", name=project.name)
    second = await runtime.start(changed, changed.services["app"])
    assert second.ident != first.ident
    assert inspect(client, second.ident)["Name"] == f"/{project.name}-app-1"
    with pytest.raises(docker.errors.NotFound):
        client.api.inspect_container(first.ident)
    await runtime.stop(second, "SIGTERM", 10)


async def test_a_running_container_whose_configuration_changed_is_stopped_before_it_is_replaced(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient, tmp_path: Path
) -> None:
    """Left running (its daemon killed, say) and then changed: stopped with its stop signal, never killed by the
    removal (a database killed so starts with a recovery)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    graceful = "services:" + python_service(
        "app",
        """
        import signal, sys, time
        def stop(*_):
            open("/marks/stopped", "w").write("by SIGTERM")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("up", flush=True)
        time.sleep(600)
        """,
        extra=f"    volumes: ['{marks}:/marks']\n",
    )
    project = projects(graceful)
    await runtime.prepare(project)
    first = await runtime.start(project, project.services["app"])
    await until(lambda: runtime.tail(project, "app", 1), message="the service to print")
    changed = projects(graceful + "      EXTRA: '1'\n", name=project.name)
    second = await runtime.start(changed, changed.services["app"])
    assert second.ident != first.ident
    assert (marks / "stopped").read_text() == "by SIGTERM"
    await runtime.stop(second, "SIGTERM", 10)


async def test_a_new_runtime_adopts_a_running_container(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects(SERVICE)
    service = project.services["app"]
    await runtime.prepare(project)
    handle = await runtime.start(project, service)

    later = DockerRuntime()  # as a replaced supervisor daemon would
    try:
        adopted = await later.adopt(project, service, handle.record)
        assert adopted is not None and adopted.adopted and adopted.ident == handle.ident
        assert abs(adopted.started_at - handle.started_at) < 5
        changed = projects(SERVICE + "      EXTRA: '1'\n", name=project.name)
        assert await later.adopt(changed, changed.services["app"], handle.record) is None
        assert await later.adopt(project, service, {"id": "0" * 64}) is None

        assert [h.ident for h in await later.strays(project.state_dir, set())] == [handle.ident]
        assert await later.strays(project.state_dir, {handle.ident}) == []
        strays = await later.strays(project.state_dir, set())
        assert strays[0].service == "app" and strays[0].adopted

        async def greeted() -> bool:  # its handler for SIGTERM is set: one before it is ignored (PID 1)
            return "hello from app" in await later.tail(project, "app", 10)

        await until(greeted, message="the app's first line (its SIGTERM handler set)")
        result = await later.stop(adopted, "SIGTERM", 10)
        assert result.exit_code == 0
        assert await later.adopt(project, service, handle.record) is None  # stopped: nothing to adopt
        assert await later.strays(project.state_dir, set()) == []
    finally:
        later.close()


async def test_wait_wakes_on_exit_while_waiting(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects(
        """
services:
  job:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "sleep 1; exit 3"]
"""
    )
    await runtime.prepare(project)
    handle = await runtime.start(project, project.services["job"])
    began = time.monotonic()
    assert await runtime.wait(handle) == 3
    assert time.monotonic() - began < 4  # woken by the die event, not by the periodic recheck


async def _when(value, accept):  # type: ignore[no-untyped-def]
    got = await value
    return got if accept(got) else None


async def test_a_container_that_cannot_start_again_is_replaced(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(SERVICE)
    await runtime.prepare(project)
    first = await runtime.start(project, project.services["app"])
    await runtime.stop(first, "SIGTERM", 10)
    client.networks.get(f"{project.name}_default").remove()  # its network is gone: docker start would fail
    await runtime.prepare(project)
    second = await runtime.start(project, project.services["app"])
    assert second.ident != first.ident
    assert inspect(client, second.ident)["State"]["Running"]
    await runtime.stop(second, "SIGTERM", 10)
