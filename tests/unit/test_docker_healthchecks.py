"""A container healthcheck that overstays is ended even when the engine starts its process late.

The engine answers ``exec start`` before the check's process exists: ``exec inspect`` says Pid 0 for a while
(40-250 ms measured at load 14), then the pid of ``runc init`` before it becomes the check. An abandon that looked
once found nothing to kill and the check lived on (``sleep 30`` in tests/docker/test_lifecycle.py under load). A
fake engine here starts the exec late, on a script of ``exec inspect`` answers; a fake ``end_check`` records kills.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from unistack.runtimes.docker import healthchecks, probe_kill

ARGV = ["sleep", "30"]
NOT_STARTED = {"Running": True, "ExitCode": None, "Pid": 0}  # what the engine says just after exec start
RUNNING = {"Running": True, "ExitCode": None, "Pid": 4242}
ENDED = {"Running": False, "ExitCode": 0, "Pid": 4242}


class FakeStream:
    """An exec's output: ``output`` then the end, or (``hangs``) nothing until it is closed."""

    def __init__(self, output: bytes, hangs: bool) -> None:
        self.output, self.hangs = output, hangs
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        if self.output:
            yield self.output
        if self.hangs:
            self.closed.wait(30)
            raise ValueError("I/O operation on closed file.")  # what the SDK's stream does when closed under it

    def close(self) -> None:
        self.closed.set()


class FakeApi:
    """The engine's exec calls; ``inspects`` are its answers in turn (the last one repeats)."""

    def __init__(self, inspects: list[dict[str, Any]], output: bytes = b"", hangs: bool = True) -> None:
        self.inspects, self.output, self.hangs = inspects, output, hangs
        self.create_gate: threading.Event | None = None
        self.created = threading.Event()
        self.started = False
        self.stream: FakeStream | None = None
        self.inspected = 0

    def exec_create(self, container: str, argv: list[str], stdout: bool, stderr: bool) -> dict[str, str]:
        self.created.set()
        if self.create_gate is not None:
            assert self.create_gate.wait(10)
        return {"Id": "exec-1"}

    def exec_start(self, exec_id: str, stream: bool) -> FakeStream:
        self.started = True
        self.stream = FakeStream(self.output, self.hangs)
        return self.stream

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        answer = self.inspects[min(self.inspected, len(self.inspects) - 1)]
        self.inspected += 1
        return answer


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


class Kills:
    """``end_check``: records each call; ``answers`` in turn (False: the pid is ``runc init``, not the check yet)."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, list[str]]] = []

    def __call__(self, pid: int, argv: Sequence[str]) -> bool:
        self.calls.append((pid, list(argv)))
        return self.answers.pop(0) if self.answers else True


def run_of(api: FakeApi, kills: Kills, start_wait: float = 10.0) -> healthchecks._Exec:
    client = FakeClient(api)
    return healthchecks._Exec(lambda: client, "container-1", ARGV, end_check=kills, start_wait=start_wait)  # type: ignore[arg-type, return-value]


async def test_a_check_that_times_out_before_its_process_starts_is_ended_once_it_does() -> None:
    api = FakeApi([NOT_STARTED, NOT_STARTED, NOT_STARTED, RUNNING])
    kills = Kills(False, True)  # first seen as runc init, then as the check
    result = await healthchecks.run_check(run_of(api, kills), 0.05)
    assert not result.ok and "timed out after 0.05s" in result.output
    assert kills.calls == [(4242, ARGV), (4242, ARGV)]  # done by the time the probe answers
    assert api.stream is not None and api.stream.closed.is_set()


async def test_a_check_abandoned_before_its_exec_starts_is_never_started() -> None:
    api = FakeApi([RUNNING])
    api.create_gate = threading.Event()
    kills = Kills()
    run = run_of(api, kills)

    def release_once_abandoned() -> None:  # exec create answers only after the timeout
        deadline = time.monotonic() + 10
        while not run.abandoned and time.monotonic() < deadline:
            time.sleep(0.005)
        assert api.create_gate is not None
        api.create_gate.set()

    threading.Thread(target=release_once_abandoned, daemon=True).start()
    result = await healthchecks.run_check(run, 0.05)
    assert not result.ok and "timed out" in result.output
    assert api.created.is_set() and not api.started and kills.calls == []


async def test_a_check_that_ended_on_its_own_meanwhile_is_not_signalled() -> None:
    api = FakeApi([ENDED])
    kills = Kills()
    result = await healthchecks.run_check(run_of(api, kills), 0.05)
    assert "timed out" in result.output and kills.calls == []


async def test_a_check_whose_process_never_shows_is_given_up_after_the_start_wait() -> None:
    api = FakeApi([NOT_STARTED])  # a remote engine's pid, or one that never starts
    kills = Kills()
    result = await healthchecks.run_check(run_of(api, kills, start_wait=0.1), 0.05)
    assert "timed out" in result.output and kills.calls == [] and api.inspected >= 1


async def test_a_cancelled_check_is_ended_once_its_process_starts() -> None:
    api = FakeApi([NOT_STARTED, NOT_STARTED, RUNNING])
    kills = Kills()
    probing = asyncio.create_task(healthchecks.run_check(run_of(api, kills), 60))
    deadline = time.monotonic() + 10
    while api.stream is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    probing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probing
    while not kills.calls and time.monotonic() < deadline:  # the abandon runs in its own thread
        await asyncio.sleep(0.005)
    assert kills.calls == [(4242, ARGV)]


async def test_a_check_that_finishes_in_time_gives_its_output_and_code() -> None:
    api = FakeApi([{"Running": False, "ExitCode": 3, "Pid": 4242}], output=b"sick\n", hangs=False)
    kills = Kills()
    result = await healthchecks.run_check(run_of(api, kills), 60)
    assert (result.ok, result.exit_code, result.output) == (False, 3, "sick\n") and kills.calls == []


def test_end_check_kills_only_the_check_and_says_when_the_pid_is_not_it_yet() -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    process = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10  # until it has exec'd: a forked child shows its parent's command line
        while psutil.Process(process.pid).cmdline() != argv and time.monotonic() < deadline:
            time.sleep(0.005)
        assert probe_kill.end_check(process.pid, ["runc", "init"]) is False  # not the check (yet): left alone
        assert process.poll() is None
        assert probe_kill.end_check(process.pid, argv) is True
        assert process.wait(10) == -9
    finally:
        process.kill()
        process.wait(10)
    beyond = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    assert probe_kill.end_check(beyond, argv) is True  # no such process (it ended, or it is elsewhere)
