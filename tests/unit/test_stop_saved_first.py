"""A stop signal goes out only after what the ``stopping`` event schedules has run: the daemon saves its state
first thing in the next loop turn (a restart or a down recorded as begun), so a daemon SIGKILLed at any moment
of a stop leaves a next one that knows it has a stop to finish (never a service signalled but recorded as kept)."""

from __future__ import annotations

import asyncio

from unistack.engine.events import Event
from unistack.engine.supervisor import Engine
from unistack.runtimes.base import Handle, StopResult

from .fakes import FakeClock, FakeRuntime, project, service


class SignalsAfterSave(FakeRuntime):
    def __init__(self, clock: FakeClock, saved: list[str]) -> None:
        super().__init__(clock)
        self.saved = saved
        self.signalled_before_save: list[str] = []

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        if handle.service not in self.saved:  # the signal would go out now, before the save
            self.signalled_before_save.append(handle.service)
        return await super().stop(handle, signal_name, grace)


async def test_the_state_is_saved_before_a_stop_signal_goes_out() -> None:
    clock = FakeClock()
    saved: list[str] = []

    def on_event(event: Event) -> None:
        if event.kind == "stopping" and event.service is not None:  # as the daemon's _save_next schedules it
            asyncio.get_running_loop().call_soon(saved.append, event.service)

    runtime = SignalsAfterSave(clock, saved)
    engine = Engine(
        project(service("db"), service("api", depends_on={"db": "service_started"})),
        runtime,
        clock=clock,
        on_event=on_event,
    )
    await engine.up()
    await clock.run_until(lambda: engine.status["api"].state == "running")
    restart = asyncio.ensure_future(engine.restart(["api"]))
    await clock.run_until(restart.done)
    closing = asyncio.ensure_future(engine.close())
    await clock.run_until(closing.done)
    assert saved == ["api", "api", "db"]
    assert runtime.signalled_before_save == []
