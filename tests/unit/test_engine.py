"""The engine against a scripted runtime on virtual time: ordering, gating, healing, fatal, stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.config.model import Dependency, ProcessSpec, Service, replace
from unistack.engine.states import rows_to_builtins
from unistack.engine.supervisor import Engine

from .fakes import FakeClock, FakeRuntime, engine_of, project, service

make = engine_of


def state(engine: Engine, name: str) -> str:
    return engine.status[name].state


async def test_probes_begin_an_interval_apart_however_long_they_take(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(runtime, clock, service("db", healthcheck=True))
    runtime.script("db").probes = lambda n: n >= 3
    runtime.script("db").probe_takes = lambda n: 2.0  # interval 5, no start period: at 5, 10 and 15 (not 5, 12, 19)
    await engine.up()
    await clock.run_until(lambda: state(engine, "db") == "healthy")
    assert runtime.probe_times["db"] == [5.0, 10.0, 15.0]


async def test_probes_count_from_the_start_not_from_when_the_runtime_reported_it(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, service("db", healthcheck=True))
    runtime.script("db").probes = lambda n: n >= 2
    runtime.script("db").start_takes = 0.3  # the process began at 0; the engine hears of it at 0.3
    await engine.up()
    await clock.run_until(lambda: state(engine, "db") == "healthy")
    assert runtime.probe_times["db"] == pytest.approx([5.0, 10.0])


async def test_a_probe_that_overruns_its_slot_is_followed_at_once_and_the_grid_keeps_its_phase(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, service("db", healthcheck=True, retries=10))
    runtime.script("db").probes = lambda n: n >= 4
    runtime.script("db").probe_takes = lambda n: 6.0 if n == 1 else 0.5  # the first overruns the interval (5)
    await engine.up()
    await clock.run_until(lambda: state(engine, "db") == "healthy")
    assert runtime.probe_times["db"] == [5.0, 11.0, 15.0, 20.0]  # 11: overdue (due at 10), run at once


async def test_a_service_says_once_what_it_begins_to_wait_for(clock: FakeClock, runtime: FakeRuntime) -> None:
    deps = {name: "service_healthy" for name in ("a", "b", "c")}
    engine, events = make(
        runtime,
        clock,
        *(service(name, healthcheck=True) for name in deps),
        service("app", depends_on=deps),  # type: ignore[arg-type]
    )
    await engine.up()
    await clock.run_until(lambda: state(engine, "app") == "running")
    waiting = [e.message for e in events if e.kind == "waiting" and e.service == "app"]
    assert waiting == ["app waits for a (service_healthy), b (service_healthy), c (service_healthy)"]


async def test_chain_starts_in_order_gated_on_health(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("db", healthcheck=True),
        service("migrate", depends_on={"db": "service_healthy"}),
        service(
            "backend",
            healthcheck=True,
            depends_on={"db": "service_healthy", "migrate": "service_completed_successfully"},
        ),
        service("proxy", depends_on={"backend": "service_healthy"}),
    )
    runtime.script("migrate").exit_on_start = [0]
    runtime.script("db").probes = lambda n: n >= 3  # healthy at the third probe
    await engine.up()
    await clock.run_until(lambda: state(engine, "proxy") == "running")
    starts = [s for action, s, _ in runtime.calls if action == "start"]
    assert starts == ["db", "migrate", "backend", "proxy"]
    assert runtime.started("migrate")[0] >= 15  # three probes of db at interval 5 (no start period)
    assert state(engine, "migrate") == "exited" and engine.status["migrate"].exit_code == 0
    report = await engine.wait_ready(timeout=0)
    assert report.ok, report


async def test_independent_services_start_together(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(runtime, clock, *(service(f"s{i}") for i in range(5)))
    await engine.up()
    await clock.run_until(lambda: all(st.state == "running" for st in engine.status.values()))
    assert {t for action, _, t in runtime.calls if action == "start"} == {0.0}


async def test_unhealthy_service_is_restarted_and_heals(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("api", healthcheck=True, restart="always"))
    runtime.script("api").probes = lambda n: n not in (2, 3, 4)  # healthy, then 3 failures, then fine
    await engine.up()
    await clock.run_until(lambda: engine.status["api"].restarts == 1 and state(engine, "api") == "healthy")
    kinds = [e.kind for e in events]
    assert kinds.index("unhealthy") < kinds.index("restarting") < len(kinds) - 1 - kinds[::-1].index("healthy")
    assert [a for a, s, _ in runtime.calls if s == "api"] == ["start", "stop", "start"]
    assert engine.status["api"].last_check is not None and engine.status["api"].last_check.ok


async def test_unhealthy_with_restart_no_keeps_running(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(runtime, clock, service("api", healthcheck=True, restart="no"))
    runtime.script("api").probes = lambda n: n == 1
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "unhealthy")
    await clock.run_until(lambda: clock.t > 60)
    assert runtime.started("api") == [0.0] and state(engine, "api") == "unhealthy"


async def test_crash_loop_backs_off_then_goes_fatal_and_blocks_dependents(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, events = make(
        runtime,
        clock,
        service("db", restart="on-failure", max_attempts=3, healthcheck=True),
        service("backend", depends_on={"db": "service_healthy"}),
    )
    runtime.script("db").exit_on_start = [1, 1, 1, 1]
    await engine.up()
    await clock.run_until(lambda: state(engine, "db") == "fatal" and state(engine, "backend") == "blocked")
    assert runtime.started("db") == [0.0, 0.0, 1.0, 3.0]  # immediate, then 1 s, then 2 s
    assert runtime.started("backend") == []
    fatal = next(e for e in events if e.kind == "fatal")
    assert fatal.data["event"] == "service_fatal"
    assert fatal.data["project"] == "demo" and fatal.data["service"] == "db"
    assert fatal.data["attempts"] == 3 and fatal.data["exit_code"] == 1
    assert fatal.data["last_logs"] == ["db says goodbye"]
    assert "last_check" in fatal.data
    assert "db" in engine.status["backend"].reason and "fatal" in engine.status["backend"].reason
    report = await engine.wait_ready(timeout=0)
    assert set(report.failed) == {"db", "backend"}
    assert "db says goodbye" in report.failed["db"]


async def test_restart_budget_resets_after_a_stable_run(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(runtime, clock, service("w", restart="on-failure", max_attempts=1))
    await engine.up()
    await clock.run_until(lambda: state(engine, "w") == "running")
    for _ in range(3):  # each crash after a long stable run starts a fresh budget
        await clock.advance(61)
        runtime.crash("w", 2)
        await clock.run_until(lambda: len(runtime.started("w")) >= 2 and state(engine, "w") == "running")
    assert state(engine, "w") == "running" and engine.status["w"].restarts == 3
    runtime.crash("w", 2)  # a quick crash right after a restart: the one allowed attempt is spent
    await clock.run_until(lambda: state(engine, "w") == "fatal")
    assert engine.status["w"].restarts == 3


async def test_exit_with_restart_no_blocks_healthy_dependents_with_logs(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(
        runtime, clock, service("db", healthcheck=True), service("api", depends_on={"db": "service_healthy"})
    )
    runtime.script("db").exit_on_start = [3]
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "blocked")
    exited = next(e for e in events if e.kind == "exited")
    assert "code 3" in exited.message and "db says goodbye" in exited.message
    assert "exited with code 3" in engine.status["api"].reason


async def test_failed_migration_blocks_dependent(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("migrate"),
        service("api", depends_on={"migrate": "service_completed_successfully"}),
    )
    runtime.script("migrate").exit_on_start = [1]
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "blocked")
    assert runtime.started("api") == []


async def test_optional_missing_dependency_is_skipped(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("api", depends_on={"cache": Dependency(condition="service_healthy", required=False)}),
    )
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "running")


async def test_start_failure_is_reported_and_retried(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("api", restart="always", max_attempts=2))
    runtime.script("api").fail_start = True
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "fatal")
    assert len(runtime.started("api")) == 3
    assert any("cannot connect" in e.message for e in events if e.kind == "error")


async def test_a_start_that_cannot_heal_is_fatal_at_once_in_one_event(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, service("api", restart="on-failure", max_attempts=5, healthcheck=True))
    runtime.script("api").cannot_start = True
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "fatal")
    assert runtime.started("api") == [0.0]  # never retried
    st = engine.status["api"]
    assert st.restarts == 0 and st.reason == "could not start: command not found: 'nope' (x-unistack.process.command)"
    mine = [e for e in events if e.service == "api" and e.kind not in {"starting", "setup"}]
    assert [e.kind for e in mine] == ["fatal"]  # no "error", no "restarting"
    assert "\n" not in mine[0].message and "last log lines" not in mine[0].message
    assert mine[0].data["event"] == "service_fatal" and mine[0].data["attempts"] == 0  # notifiers hear of it
    report = await engine.wait_ready(timeout=0)
    assert report.failed["api"] == f"api is fatal; {st.reason}"


async def test_dependents_of_a_failed_service_name_their_direct_dependency_only(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("db", restart="always"),
        service("backend", depends_on={"db": "service_started"}),
        service("proxy", depends_on={"backend": "service_started"}),
        service("edge", depends_on={"proxy": "service_started"}),
    )
    runtime.script("db").cannot_start = True
    await engine.up()
    await clock.run_until(lambda: state(engine, "edge") == "blocked")
    reasons = {name: engine.status[name].reason for name in ("backend", "proxy", "edge")}
    assert reasons == {
        "backend": "dependency db is fatal (could not start: command not found: 'nope' (x-unistack.process.command))",
        "proxy": "dependency backend is blocked",
        "edge": "dependency proxy is blocked",
    }
    report = await engine.wait_ready(timeout=0)
    assert all("\n" not in why for why in report.failed.values())
    assert report.failed["edge"] == "edge is blocked; dependency proxy is blocked"


async def test_stop_is_reverse_order_with_grace_then_kill(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(
        runtime,
        clock,
        service("db", grace=3),
        service("api", depends_on={"db": "service_started"}),
        service("proxy", depends_on={"api": "service_started"}),
    )
    runtime.script("db").ignores_stop = True
    await engine.up()
    await clock.run_until(lambda: state(engine, "proxy") == "running")
    closing = __import__("asyncio").ensure_future(engine.close())
    await clock.run_until(closing.done)
    stops = [(s, t) for action, s, t in runtime.calls if action == "stop"]
    assert [s for s, _ in stops] == ["proxy", "api", "db"]
    killed = [e for e in events if e.kind == "killed"]
    assert [e.service for e in killed] == ["db"] and "3s" in killed[0].message
    assert all(st.state == "stopped" for st in engine.status.values())


async def test_restart_follows_dependencies_that_ask_for_it(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(
        runtime,
        clock,
        service("db"),
        service("api", depends_on={"db": Dependency(condition="service_started", restart=True)}),
        service("worker", depends_on={"db": "service_started"}),
    )
    await engine.up()
    await clock.run_until(lambda: state(engine, "worker") == "running" and state(engine, "api") == "running")
    task = __import__("asyncio").ensure_future(engine.restart(["db"]))
    await clock.run_until(task.done)
    await clock.run_until(lambda: state(engine, "api") == "running")
    assert len(runtime.started("db")) == 2
    assert len(runtime.started("api")) == 2
    assert len(runtime.started("worker")) == 1


async def test_reconcile_starts_missing_recreates_changed_and_removes_orphans(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, service("a"), service("b"), service("old"))
    await engine.up(["a", "b", "old"])
    await clock.run_until(lambda: state(engine, "old") == "running")
    new = project(service("a"), service("b", grace=1), service("c"))
    task = __import__("asyncio").ensure_future(engine.reconcile(new))
    await clock.run_until(task.done)
    assert task.result() == {"old": "removed", "b": "recreated", "c": "started"}
    await clock.run_until(lambda: state(engine, "c") == "running" and state(engine, "b") == "running")
    assert len(runtime.started("a")) == 1 and len(runtime.started("b")) == 2
    assert "old" not in engine.status


async def test_snapshot_has_the_documented_fields(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, _ = make(runtime, clock, service("db", healthcheck=True))
    await engine.up()
    await clock.run_until(lambda: state(engine, "db") == "healthy")
    (row,) = rows_to_builtins(engine.snapshot())  # as `ps --format json` prints it
    assert {"service", "state", "health", "restarts", "last_check", "pid", "container", "ports"} <= set(row)
    assert row["health"] == "healthy" and row["last_check"]["ok"] is True
    assert row["last_check"]["at"].endswith("Z") and row["pid"] == 100


def with_setup(svc: Service) -> Service:
    return replace(svc, process=ProcessSpec(command=("run",), setup=("install",), working_dir=Path("/nonexistent")))


async def test_setup_runs_once_per_up_before_the_first_start(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(runtime, clock, with_setup(service("api", restart="always")))
    runtime.script("api").exit_on_start = [1]
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "running" and engine.status["api"].restarts == 1)
    assert [a for a, s, _ in runtime.calls if s == "api"] == ["setup", "start", "start"]
    assert [e.message for e in events if e.kind == "setup"] == ["api setting up: install", "api set up"]


async def test_failed_setup_is_fatal_and_blocks_dependents(clock: FakeClock, runtime: FakeRuntime) -> None:
    engine, events = make(
        runtime, clock, with_setup(service("frontend")), service("proxy", depends_on={"frontend": "service_started"})
    )
    runtime.script("frontend").fail_setup = True
    await engine.up()
    await clock.run_until(lambda: state(engine, "proxy") == "blocked")
    assert state(engine, "frontend") == "fatal" and "setup failed" in engine.status["frontend"].reason
    assert runtime.started("frontend") == [] and any(e.kind == "fatal" for e in events)


async def test_a_recreated_service_is_not_ready_until_its_new_incarnation_is(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, service("api", healthcheck=True))
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "healthy")
    changed = project(service("api", healthcheck=True, grace=3))
    task = __import__("asyncio").ensure_future(engine.reconcile(changed))
    await clock.run_until(task.done)
    report = await engine.wait_ready(timeout=0)
    assert not report.ok and "api" in report.pending
    assert engine.status["api"].health != "healthy" and engine.status["api"].restarts == 0
    await clock.run_until(lambda: state(engine, "api") == "healthy")
    assert (await engine.wait_ready(timeout=0)).ok


async def test_an_adopted_incarnation_last_seen_healthy_stays_ready_across_a_handover(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    from unistack.runtimes.base import Handle

    engine, _ = make(
        runtime, clock, service("db", healthcheck=True), service("api", depends_on={"db": "service_healthy"})
    )
    engine.status["db"].state = "healthy"  # as the previous daemon saved it
    await engine.up(["db"], adopted={"db": Handle("db", "41", clock.wall())}, with_dependencies=False)
    report = await engine.wait_ready(["db"], timeout=0)
    assert report.ok and state(engine, "db") == "healthy", report
    engine.status["api"].state = "created"  # not seen before: starting, not healthy
    await engine.up(["api"])
    await clock.run_until(lambda: state(engine, "api") == "running")
    assert runtime.started("api")[0] < 1.0  # no waiting for db's next probe


async def test_reconcile_recreates_what_the_runtime_says_is_outdated_and_says_why(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, service("api"), service("db"))
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "running" and state(engine, "db") == "running")
    runtime.script("api").outdated = "its image stack-api was rebuilt"
    task = __import__("asyncio").ensure_future(engine.reconcile(project(service("api"), service("db"))))
    await clock.run_until(task.done)
    assert task.result() == {"api": "recreated (its image stack-api was rebuilt)"}
    await clock.run_until(lambda: state(engine, "api") == "running")
    assert len(runtime.started("api")) == 2 and len(runtime.started("db")) == 1


async def test_an_outdated_service_is_set_up_before_it_is_stopped_and_kept_when_that_fails(
    clock: FakeClock, runtime: FakeRuntime
) -> None:
    engine, _ = make(runtime, clock, with_setup(service("api")), with_setup(service("web")))
    await engine.up()
    await clock.run_until(lambda: state(engine, "api") == "running" and state(engine, "web") == "running")
    for name in ("api", "web"):
        runtime.script(name).outdated = f"its image stack-{name} was rebuilt"
    runtime.script("web").fail_setup = True
    new = project(with_setup(service("api")), with_setup(service("web")))
    task = __import__("asyncio").ensure_future(engine.reconcile(new))
    await clock.run_until(task.done)
    assert task.result() == {
        "api": "recreated (its image stack-api was rebuilt)",
        "web": "not recreated: its setup failed (npm ERR! 404 left-pad)",
    }
    api_calls = [action for action, s, _ in runtime.calls if s == "api"]
    assert api_calls[:4] == ["setup", "start", "setup", "stop"]  # built while the old one still ran
    await clock.run_until(lambda: state(engine, "api") == "running")
    assert len(runtime.started("web")) == 1 and state(engine, "web") == "running"
