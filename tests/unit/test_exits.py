"""How an incarnation ended, in the words of events, reasons and notifications (never "None"), and the cause
each restart carries (only the supervisor's count as flapping), against a scripted runtime on virtual time."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from unistack.config.model import Dependency
from unistack.control.adoption import restarts_saved
from unistack.engine import exits
from unistack.engine.events import Event
from unistack.engine.states import rows_from_json
from unistack.engine.status import ServiceStatus, dependency_verdict
from unistack.runtimes.base import Handle
from unistack.runtimes.docker.engine import ExitWatcher

from .fakes import FakeClock, FakeRuntime, engine_of, service

make = engine_of


def said(events: list[Event], kind: str) -> list[str]:
    return [e.message.split(";")[0] for e in events if e.kind == kind]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (0, "exited with code 0"),
        (3, "exited with code 3"),
        (128, "exited with code 128"),
        (137, "was killed by signal 9 (SIGKILL, exit code 137)"),
        (143, "was killed by signal 15 (SIGTERM, exit code 143)"),
        (255, "exited with code 255"),  # 128 + 127 names no signal: the program's own code
        (None, "exited (exit code unknown: the runtime could not tell it)"),
    ],
)
def test_an_end_in_words(code: int | None, words: str) -> None:
    assert exits.ended(code) == words


async def test_a_sigkilled_service_is_said_to_be_killed_by_the_signal(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("backend", restart="on-failure", max_attempts=1))
    await engine.up()
    await clock.run_until(lambda: engine.status["backend"].state == "running")
    runtime.crash("backend", 137)  # what both runtimes report for SIGKILL (Docker's State.ExitCode too)
    await clock.run_until(
        lambda: engine.status["backend"].restarts == 1 and engine.status["backend"].handle is not None
    )
    assert said(events, "exited") == ["backend was killed by signal 9 (SIGKILL, exit code 137)"]
    assert next(e for e in events if e.kind == "exited").data["signal"] == 9
    assert said(events, "restarting") == ["backend was killed by signal 9 (SIGKILL, exit code 137)"]
    runtime.crash("backend", 137)  # the budget is spent: the notification says it too
    await clock.run_until(lambda: engine.status["backend"].state == "fatal")
    fatal = next(e for e in events if e.kind == "fatal")
    assert fatal.data["reason"] == "was killed by signal 9 (SIGKILL, exit code 137); gave up after 1 restart(s)"
    assert fatal.data["exit_code"] == 137
    assert not [e for e in events if "None" in e.message]


async def test_what_the_runtime_knows_beyond_the_code_is_said_too(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("backend", restart="always"))
    runtime.script("backend").exit_detail = "out of memory: the kernel's OOM killer ended it (OOMKilled)"
    await engine.up()
    await clock.run_until(lambda: engine.status["backend"].state == "running")
    runtime.crash("backend", 137)
    await clock.run_until(lambda: engine.status["backend"].restarts == 1)
    expected = (
        "backend was killed by signal 9 (SIGKILL, exit code 137): out of memory: the kernel's OOM killer ended it"
    )
    assert [m.startswith(expected) for m in said(events, "exited") + said(events, "restarting")] == [True, True]


def test_docker_says_a_container_the_oom_killer_ended_once() -> None:
    class Api:
        def inspect_container(self, container_id: str) -> dict[str, object]:
            return {"State": {"Running": False, "ExitCode": 137, "OOMKilled": container_id == "oom"}}

    class Client:
        api = Api()

    watcher = ExitWatcher(lambda: Client())  # type: ignore[arg-type, return-value]
    assert watcher._state("oom") == (False, 137) and watcher._state("killed") == (False, 137)
    assert watcher.oom_killed("oom") and not watcher.oom_killed("oom") and not watcher.oom_killed("killed")


async def test_an_adopted_service_whose_exit_code_is_unknown_says_it_is_not_a_child(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, events = make(runtime, clock, service("backend", restart="always"))
    adopted = Handle("backend", "41", clock.wall(), record={"pid": 41}, adopted=True)
    runtime.exits["41"] = asyncio.get_running_loop().create_future()
    await engine.up(["backend"], adopted={"backend": adopted}, with_dependencies=False)
    await clock.idle()
    runtime.exits["41"].set_result(None)  # it went; the kernel told its exit status to its parent only
    await clock.run_until(lambda: engine.status["backend"].restarts == 1)
    expected = "backend exited (exit code unknown: not a child of this daemon)"
    assert said(events, "exited") == [expected]
    assert said(events, "restarting") == [expected]
    assert not [e for e in events if "None" in e.message]


async def test_a_child_whose_exit_code_the_runtime_cannot_tell_says_so(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("backend"))
    await engine.up()
    await clock.run_until(lambda: engine.status["backend"].state == "running")
    runtime.exits[runtime.live["backend"].ident].set_result(None)  # a container removed from outside
    await clock.run_until(lambda: engine.status["backend"].state == "exited")
    assert said(events, "exited") == ["backend exited (exit code unknown: the runtime could not tell it)"]
    assert (
        engine.status["backend"].reason == 'exited (exit code unknown: the runtime could not tell it); restart is "no"'
    )


def test_a_dependency_that_ended_unknown_is_said_so_without_none() -> None:
    status = ServiceStatus("migrate", state="exited", exit_code=None)
    verdict = dependency_verdict(
        "migrate",
        Dependency(condition="service_completed_successfully"),
        status,
        service("migrate"),
        supervised=True,
    )
    assert verdict == "dependency migrate exited (exit code unknown: the runtime could not tell it) " + (
        "(service_completed_successfully)"
    )


# ----------------------------------------------------------------- restart causes


async def test_each_restart_carries_its_cause_and_only_the_supervisors_count(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("db", restart="always"),
        service("backend", restart="always", depends_on={"db": Dependency(condition="service_started", restart=True)}),
    )
    await engine.up()
    await clock.run_until(lambda: all(st.state == "running" for st in engine.status.values()))
    await engine.restart(["db"])  # `unistack restart db`: backend follows it (restart: true)
    await clock.run_until(lambda: all(st.state == "running" for st in engine.status.values()))
    db, backend = (engine.snapshot()[i] for i in (0, 1))
    assert [r.cause for r in db.restarts_recent] == ["requested"]
    assert [r.cause for r in backend.restarts_recent] == ["dependency"]
    assert db.restarts == 0 and db.restarted_at == [] and db.unplanned_restarts() == []
    runtime.crash("db", 137)
    await clock.run_until(lambda: engine.status["db"].restarts == 1)
    db = engine.snapshot()[0]
    assert [r.cause for r in db.restarts_recent] == ["requested", "exited"]
    assert db.unplanned_restarts() == db.restarted_at == [db.restarts_recent[1].at]
    await engine.close()


def test_a_row_or_state_of_the_previous_version_counts_every_restart_as_unplanned() -> None:
    old = msgspec.json.encode(
        [
            {
                "service": "backend",
                "state": "healthy",
                "health": "healthy",
                "restarts": 1,
                "exit_code": None,
                "started_at": None,
                "last_check": None,
                "pid": 7,
                "container": None,
                "ports": [],
                "reason": "",
                "restarted_at": ["2026-12-07T23:00:00.000Z"],
            }
        ]
    )
    (row,) = rows_from_json(old)
    assert row.restarts_recent == [] and row.unplanned_restarts() == ["2026-12-07T23:00:00.000Z"]
    (row,) = rows_from_json(old.replace(b'"reason":""', b'"reason":"","restarts_recent":[{"at":"x"}]'))
    assert [(r.cause, r.planned) for r in row.restarts_recent] == [("exited", False)]
    assert restarts_saved({"restarted_at": [1.5]}) == [(1.5, "exited")]
    assert restarts_saved({"restarted_at": [1.5], "recent_restarts": [[1.0, "requested"], [1.5, "exited"]]}) == [
        (1.0, "requested"),
        (1.5, "exited"),
    ]
