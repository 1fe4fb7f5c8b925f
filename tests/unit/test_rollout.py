"""Start-first updates on virtual time: the plan as data, then the executor against the scripted runtime."""

from __future__ import annotations

import asyncio

import pytest

from unistack.config.model import Service, replace
from unistack.engine import rollout
from unistack.engine.supervisor import Engine
from unistack.printer import ps_table

from .fakes import FakeClock, FakeRuntime, project, service


def web(version: str = "v1", *, order: str | None = "start-first", healthcheck: bool = True) -> Service:
    svc = service("web", healthcheck=healthcheck)
    spec = {"deploy": {"update_config": {"order": order}}} if order else {}
    return replace(svc, spec=spec, environment={"VERSION": version})


@pytest.mark.parametrize(
    ("svc", "healthy", "order", "why"),
    [
        (web(order=None), True, "stop-first", ""),
        (web(order="stop-first"), True, "stop-first", ""),
        (web(healthcheck=False), True, "stop-first", "needs a healthcheck"),
        (web(), False, "stop-first", "needs a healthy incarnation"),
        (web(), True, "start-first", ""),
    ],
)
def test_plan(svc: Service, healthy: bool, order: str, why: str) -> None:
    chosen = rollout.plan(svc, healthy)
    assert chosen.order == order and why in chosen.reason and (why or not chosen.reason)


async def running(clock: FakeClock, runtime: FakeRuntime) -> Engine:
    engine = Engine(project(web()), runtime, clock=clock)
    await engine.up()
    await clock.run_until(lambda: engine.status["web"].state == "healthy")
    return engine


async def test_the_new_incarnation_is_switched_to_once_healthy_then_the_old_stops() -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    engine = await running(clock, runtime)
    old = engine.status["web"].handle
    assert old is not None
    task = asyncio.ensure_future(engine.reconcile(project(web("v2"))))
    await clock.run_until(lambda: engine.status["web"].update != "" or task.done())
    assert engine.snapshot()[0].update  # `ps` shows the update in progress, in JSON and in its table
    assert "healthy, updating: waiting for the new incarnation's healthcheck" in ps_table(engine.snapshot())
    await clock.run_until(task.done)
    assert task.result()["web"].startswith("updated start-first")
    actions = [a for a, _, _ in runtime.calls if a in {"start", "switch", "stop", "settle"}]
    # started beside, switched once healthy, the old stopped, then the new made the only one
    assert actions == ["start", "start", "switch", "stop", "settle"]
    st = engine.status["web"]
    assert st.state == "healthy" and st.handle is not None and st.handle.ident != old.ident and not st.update
    assert runtime.exits[old.ident].done() and not runtime.exits[st.handle.ident].done()
    await clock.advance(30)  # the runner took the new one over: probed, still healthy
    assert engine.status["web"].state == "healthy" and engine.status["web"].handle is st.handle


async def test_a_new_incarnation_that_fails_its_check_is_stopped_and_the_old_keeps_serving() -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    engine = await running(clock, runtime)
    old = engine.status["web"].handle
    assert old is not None
    runtime.script("web").beside_healthy = False
    task = asyncio.ensure_future(engine.reconcile(project(web("v2"))))
    await clock.run_until(task.done)
    with pytest.raises(rollout.RolloutFailed, match="web: the update's new incarnation failed its healthcheck"):
        task.result()
    assert not [a for a, _, _ in runtime.calls if a == "switch"]
    assert engine.project.services["web"].environment["VERSION"] == "v1"  # the version that runs: what restarts
    st = engine.status["web"]
    assert st.handle is old and st.state == "healthy" and not runtime.exits[old.ident].done() and not st.update
    new = [h for h in runtime.exits if h != old.ident]
    assert len(new) == 1 and runtime.exits[new[0]].done()  # stopped


async def test_a_runtime_that_runs_one_incarnation_replaces_it_stop_first_and_says_why() -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    engine = await running(clock, runtime)
    runtime.script("web").cannot_run_beside = True
    task = asyncio.ensure_future(engine.reconcile(project(web("v2"))))
    await clock.run_until(task.done)
    assert task.result()["web"] == "recreated stop-first (the fake runs one incarnation only)"
    await clock.run_until(lambda: engine.status["web"].state == "healthy")
    assert len(runtime.started("web")) == 2
