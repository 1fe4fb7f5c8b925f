"""The host-process runtime's spawning and waiting: Popen in spawn threads, children reaped by the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from unistack.config.model import Healthcheck, ProcessSpec, Project, Service
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import Handle
from unistack.runtimes.children import OUTPUT_LIMIT
from unistack.runtimes.process import ProcessRuntime

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="host processes are tested on Linux")


def _project(tmp_path: Path, *services: Service) -> Project:
    return Project(
        name="t",
        environment="local",
        working_dir=tmp_path,
        files=(tmp_path / "compose.yaml",),
        state_dir=tmp_path / ".unistack" / "t",
        services={s.name: s for s in services},
    )


def _service(tmp_path: Path, script: str, name: str = "svc", setup: str = "") -> Service:
    return Service(
        name=name,
        environment={"FROM_SERVICE": "yes"},
        process=ProcessSpec(
            command=("/bin/sh", "-c", script),
            setup=("/bin/sh", "-c", setup) if setup else (),
            working_dir=tmp_path,
            environment={"FROM_PROCESS": "1"},
        ),
    )


async def _ready(tmp_path: Path, *services: Service) -> tuple[ProcessRuntime, Project]:
    runtime = ProcessRuntime(base_environment={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    project = _project(tmp_path, *services)
    await runtime.prepare(project)
    return runtime, project


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_start_appends_to_the_log_with_environment_and_working_dir(tmp_path: Path) -> None:
    service = _service(tmp_path, 'echo "$FROM_SERVICE $FROM_PROCESS $UNISTACK_SERVICE $(pwd) $$"; exit 3')
    runtime, project = await _ready(tmp_path, service)
    log = runtime.log_path(project, "svc")
    log.write_text("before\n")
    handle = await runtime.start(project, service)
    assert await runtime.wait(handle) == 3
    lines = log.read_text().splitlines()
    assert lines[0] == "before"
    assert lines[1] == f"yes 1 svc {tmp_path} {handle.ident}"
    assert handle.record["pgid"] == handle.record["pid"] == int(handle.ident)
    assert handle.ident not in runtime._children


async def test_own_session_and_signal_exit_status(tmp_path: Path) -> None:
    service = _service(tmp_path, "exec sleep 30")
    runtime, project = await _ready(tmp_path, service)
    handle = await runtime.start(project, service)
    pid = int(handle.ident)
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    waiter = asyncio.create_task(runtime.wait(handle))
    os.kill(pid, signal.SIGTERM)
    assert await asyncio.wait_for(waiter, 10) == 128 + signal.SIGTERM


async def test_stop_waits_the_grace_then_kills_the_group(tmp_path: Path) -> None:
    service = _service(tmp_path, "trap '' TERM; sleep 30 & sleep 30; wait")
    runtime, project = await _ready(tmp_path, service)
    handle = await runtime.start(project, service)
    await asyncio.sleep(0.2)
    group = [p.pid for p in psutil.Process(int(handle.ident)).children()]
    waiter = asyncio.create_task(runtime.wait(handle))  # another waiter beside stop's, as the supervisor has
    started = time.monotonic()
    result = await runtime.stop(handle, "SIGTERM", 0.5)
    assert time.monotonic() - started >= 0.5
    assert result.killed and result.exit_code == 128 + signal.SIGKILL
    assert await waiter == 128 + signal.SIGKILL
    await _until(lambda: all(_gone(pid) for pid in group))


async def test_stop_within_the_grace(tmp_path: Path) -> None:
    service = _service(tmp_path, "trap 'exit 0' TERM; while :; do sleep 0.05; done")
    runtime, project = await _ready(tmp_path, service)
    handle = await runtime.start(project, service)
    await asyncio.sleep(0.2)
    result = await runtime.stop(handle, "TERM", 10)
    assert not result.killed and result.exit_code == 0


async def test_spawns_overlap_and_leave_the_loop_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_popen = subprocess.Popen

    def slow_popen(*args: object, **kwargs: object) -> object:
        time.sleep(0.3)  # a Popen that blocks, as one does until its child has exec'ed on a busy machine
        return real_popen(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "Popen", slow_popen)
    services = [_service(tmp_path, "exit 0", name=f"s{i}") for i in range(4)]
    runtime, project = await _ready(tmp_path, *services)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    handles = await asyncio.gather(*(runtime.start(project, s) for s in services))
    elapsed = time.monotonic() - started
    tick_task.cancel()
    assert elapsed < 0.9, elapsed  # serially it takes 1.2 s
    assert ticks >= 5  # the loop kept turning while the Popen calls blocked
    assert [await runtime.wait(h) for h in handles] == [0, 0, 0, 0]


async def test_a_cancelled_spawn_kills_what_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_popen = subprocess.Popen
    spawned: list[int] = []

    def slow_popen(*args: object, **kwargs: object) -> object:
        time.sleep(0.3)
        popen = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        spawned.append(popen.pid)
        return popen

    monkeypatch.setattr(subprocess, "Popen", slow_popen)
    service = _service(tmp_path, "sleep 30")
    runtime, project = await _ready(tmp_path, service)
    task = asyncio.create_task(runtime.start(project, service))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until(lambda: bool(spawned) and _gone(spawned[0]))
    await _until(lambda: not psutil.pid_exists(spawned[0]))  # reaped, not left a zombie


async def test_spawn_errors(tmp_path: Path) -> None:
    runtime, project = await _ready(tmp_path)
    missing = Service(name="m", process=ProcessSpec(command=("no-such-program-xyz",), working_dir=tmp_path))
    with pytest.raises(RuntimeFailure, match="command not found"):
        await runtime.start(project, missing)
    nowhere = Service(name="n", process=ProcessSpec(command=("/bin/true",), working_dir=tmp_path / "nope"))
    with pytest.raises(RuntimeFailure, match=r"working_dir .* does not exist"):
        await runtime.start(project, nowhere)


async def test_setup(tmp_path: Path) -> None:
    good = _service(tmp_path, "exit 0", name="good", setup="echo installing; exit 0")
    bad = _service(tmp_path, "exit 0", name="bad", setup="echo broken; exit 7")
    runtime, project = await _ready(tmp_path, good, bad)
    ok = await runtime.setup(project, good)
    assert ok.ok and ok.exit_code == 0 and "installing" in ok.output
    failed = await runtime.setup(project, bad)
    assert not failed.ok and failed.exit_code == 7 and "broken" in failed.output


async def test_probe_output_and_exit_codes(tmp_path: Path) -> None:
    service = _service(tmp_path, "sleep 30")
    runtime, project = await _ready(tmp_path, service)
    handle = Handle(service="svc", ident="0", started_at=0.0, record={"pid": 0, "create_time": 0.0})
    shell = Healthcheck(kind="CMD-SHELL", test=('echo "out $FROM_PROCESS"; echo err >&2; exit 4',), timeout=10)
    result = await runtime.probe(project, service, handle, shell)
    assert not result.ok and result.exit_code == 4
    assert result.output.split() == ["out", "1", "err"]
    cmd = Healthcheck(kind="CMD", test=("/bin/sh", "-c", "exit 0"), timeout=10)
    assert (await runtime.probe(project, service, handle, cmd)).ok
    missing = Healthcheck(kind="CMD", test=("no-such-program-xyz",), timeout=10)
    result = await runtime.probe(project, service, handle, missing)
    assert not result.ok and result.exit_code is None and "cannot run healthcheck" in result.output
    big = Healthcheck(kind="CMD-SHELL", test=("head -c 200000 /dev/zero | tr '\\0' x; echo END",), timeout=10)
    result = await runtime.probe(project, service, handle, big)
    assert result.ok and len(result.output) == OUTPUT_LIMIT and result.output.endswith("xxEND\n")


async def test_probe_timeout_kills_the_whole_probe_group(tmp_path: Path) -> None:
    service = _service(tmp_path, "sleep 30")
    runtime, project = await _ready(tmp_path, service)
    handle = Handle(service="svc", ident="0", started_at=0.0, record={"pid": 0, "create_time": 0.0})
    pidfile = tmp_path / "probe-child"
    check = Healthcheck(kind="CMD-SHELL", test=(f"sleep 30 & echo $! > {pidfile}; wait",), timeout=0.5)
    started = time.monotonic()
    result = await runtime.probe(project, service, handle, check)
    assert time.monotonic() - started < 5
    assert not result.ok and result.exit_code is None and "timed out after 0.5s" in result.output
    await _until(lambda: _gone(int(pidfile.read_text())))


async def test_many_probes_leave_no_descriptors_or_zombies(tmp_path: Path) -> None:
    service = _service(tmp_path, "sleep 30")
    runtime, project = await _ready(tmp_path, service)
    handle = Handle(service="svc", ident="0", started_at=0.0, record={"pid": 0, "create_time": 0.0})
    check = Healthcheck(kind="CMD-SHELL", test=("true",), timeout=10)
    await runtime.probe(project, service, handle, check)
    fds = len(list(Path("/proc/self/fd").iterdir()))
    results = await asyncio.gather(*(runtime.probe(project, service, handle, check) for _ in range(20)))
    assert all(r.ok for r in results)
    assert len(list(Path("/proc/self/fd").iterdir())) == fds
    assert not [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


async def test_children_are_polled_without_pidfds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    service = _service(tmp_path, "sleep 0.1; exit 5")
    runtime, project = await _ready(tmp_path, service)
    handle = await runtime.start(project, service)
    assert await asyncio.wait_for(runtime.wait(handle), 10) == 5


async def test_prepare_keeps_the_run_folder_private_and_a_traversal_right_granted_in_it(tmp_path: Path) -> None:
    runtime, project = await _ready(tmp_path)
    project.run_dir.chmod(0o711)  # what an ACL entry's mask (user:postgres:--x) or o+x shows as
    await runtime.prepare(project)
    assert project.run_dir.stat().st_mode & 0o777 == 0o711  # kept: a server starting meanwhile still gets in
    project.run_dir.chmod(0o755)
    await runtime.prepare(project)
    assert project.run_dir.stat().st_mode & 0o777 == 0o700
