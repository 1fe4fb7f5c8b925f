"""Logs on Docker: build log first, then the container's; following across restarts and recreation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from unistack.runtimes.docker.runtime import DockerRuntime
from unistack.runtimes.logfiles import LogLine

from .conftest import ProjectFactory
from .support import python_service, requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

COUNTER = """
import time
for n in range(1, 6):
    print(f"line {n}", flush=True)
time.sleep(600)
"""

GREETER = """
import os, time
print(f"hello {os.environ.get('MARK', '1')} {os.urandom(3).hex()}", flush=True)
time.sleep(600)
"""


async def test_history_has_the_build_log_first(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects("services:" + python_service("app", COUNTER))
    await runtime.prepare(project)
    (project.logs_dir / "app.build.log").write_text("step 1\nstep 2\n")
    await runtime.start(project, project.services["app"])
    await until(lambda: _has(runtime.tail(project, "app", 1), "line 5"), message="five lines")

    everything = [line async for line in runtime.logs(project, ["app"], None, False)]
    assert [line.text for line in everything] == ["step 1", "step 2"] + [f"line {n}" for n in range(1, 6)]
    assert {line.service for line in everything} == {"app"}
    assert [line.text async for line in runtime.logs(project, ["app"], 3, False)] == ["line 3", "line 4", "line 5"]
    assert await runtime.tail(project, "app", 6) == ["step 2"] + [f"line {n}" for n in range(1, 6)]
    assert [line async for line in runtime.logs(project, ["app"], 0, False)] == []


async def test_follow_goes_on_across_restarts_and_recreation(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    compose = "services:" + python_service("app", GREETER) + python_service("other", GREETER)
    project = projects(compose)
    await runtime.prepare(project)
    got: list[LogLine] = []

    async def collect() -> None:
        async for line in runtime.logs(project, ["app", "other"], 0, True):
            got.append(line)

    def texts(service: str) -> list[str]:
        return [line.text for line in got if line.service == service]

    async def count(service: str, n: int) -> bool:
        return len(texts(service)) >= n

    collector = asyncio.create_task(collect())
    try:
        first = await runtime.start(project, project.services["app"])  # created after following began
        await until(lambda: count("app", 1), message="the first incarnation's line")
        other = await runtime.start(project, project.services["other"])
        await until(lambda: count("other", 1), message="the other service's line")

        await runtime.stop(first, "SIGKILL", 0)
        second = await runtime.start(project, project.services["app"])
        assert second.ident == first.ident
        await until(lambda: count("app", 2), message="the restarted container's line")

        with (project.logs_dir / "app.build.log").open("a") as build_log:
            build_log.write("building again\n")
        await until(lambda: _contains(got, "building again"), message="the build log line")

        changed = projects(compose.replace("MARK', '1'", "MARK', '2'"), name=project.name)
        await runtime.stop(second, "SIGKILL", 0)
        third = await runtime.start(changed, changed.services["app"])
        assert third.ident != first.ident
        await until(lambda: count("app", 4), message="the recreated container's line")

        await runtime.stop(other, "SIGKILL", 0)
        await runtime.start(project, project.services["other"])
        await until(lambda: count("other", 2), message="the other service's second line")
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector

    app = texts("app")
    assert [text.split()[:2] for text in app] == [["hello", "1"], ["hello", "1"], ["building", "again"], ["hello", "2"]]
    assert len(set(app)) == 4  # three incarnations, each line once
    assert [text.split()[:2] for text in texts("other")] == [["hello", "1"], ["hello", "1"]]


async def _has(lines_coro, text: str) -> bool:  # type: ignore[no-untyped-def]
    return text in await lines_coro


async def _contains(got: list[LogLine], text: str) -> bool:
    return any(line.text == text for line in got)
