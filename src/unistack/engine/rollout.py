"""Start-first updates: a changed service replaced without downtime, on one host.

Owns the decision (pure: ``plan``) of whether a changed service is replaced start-first (its Compose
``deploy.update_config.order: start-first``, a healthcheck, a healthy incarnation now) or stop-first as before, and
the executor (``roll``) of one start-first replacement: the new incarnation started beside the old one (the
runtime's ``beside`` variant of the service: its own socket), probed until healthy, the upstream switched to it
(``runtime.switch``), the old stopped with its stop signal and grace period (it drains what it has in flight), the
new one made the service's only (``runtime.settle``) and handed to the engine's runner. A new incarnation that
fails its healthcheck is stopped and the old one keeps serving: ``RolloutFailed`` names it with its last check and
log lines.

It sees only the Runtime protocol and the Clock (through the engine); it never imports subprocess, docker or
sockets, and never formats output beyond its events' messages.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unistack.config.model import Project, Service
from unistack.config.updates import UpdateOrder, update_order
from unistack.engine.health import CheckRecord, HealthTracker
from unistack.errors import NotSupported, RuntimeFailure, ServiceFailure

if TYPE_CHECKING:
    from unistack.engine.supervisor import Engine
    from unistack.runtimes.base import Handle, Runtime


@dataclass(frozen=True)
class Plan:
    """How one changed service is replaced, and why (``reason``: what keeps it stop-first, for the user)."""

    service: str
    order: UpdateOrder
    reason: str = ""


def plan(new: Service, healthy_now: bool) -> Plan:
    """Start-first only when asked for, checkable (a healthcheck says when the new one may take traffic) and
    worth it (the old incarnation serves now); anything else stays stop-first, as Compose does."""
    if update_order(new) != "start-first":
        return Plan(new.name, "stop-first")
    if new.healthcheck is None:
        return Plan(new.name, "stop-first", "start-first needs a healthcheck to know when the new one is ready")
    if not healthy_now:
        return Plan(new.name, "stop-first", "start-first needs a healthy incarnation to keep serving meanwhile")
    return Plan(new.name, "start-first")


class RolloutFailed(ServiceFailure):
    """The new incarnation of a start-first update never became healthy; the old one keeps serving."""


async def roll(engine: Engine, name: str) -> str:
    """Replace ``name``'s healthy incarnation start-first (``engine.project`` holds the new version); return
    what was done for ``up``'s summary. Raise ``NotSupported`` before anything started when the runtime cannot
    run two incarnations (the caller falls back to stop-first), ``RolloutFailed`` when the new one failed."""
    runtime, project, clock = engine.runtime, engine.project, engine.clock
    svc = project.services[name]
    check = svc.healthcheck
    assert check is not None
    variant = runtime.beside(project, svc)  # NotSupported: nothing started yet
    st = engine.status[name]
    began = clock.now()
    st.update = "starting the new incarnation beside the old"
    engine.emit("update", name, f"{name} updating start-first: starting the new incarnation beside the old one")
    try:
        handle = await runtime.start(project, variant)
    except RuntimeFailure as exc:
        st.update = ""
        engine.emit("update", name, f"{name} update failed: the new incarnation could not start; the old one serves")
        raise RolloutFailed(
            f"{name}: the update's new incarnation could not start: {exc}; the old one keeps serving"
        ) from exc
    last: CheckRecord | None = None
    try:
        st.update = "waiting for the new incarnation's healthcheck"
        tracker = HealthTracker(check, started=clock.now() - max(0.0, clock.wall() - handle.started_at))
        exited = asyncio.ensure_future(runtime.wait(handle))
        try:
            while tracker.status != "healthy":
                pause = asyncio.ensure_future(clock.sleep(tracker.next_delay(clock.now())))
                await asyncio.wait({exited, pause}, return_when=asyncio.FIRST_COMPLETED)
                pause.cancel()
                if exited.done():
                    last = CheckRecord(clock.wall(), False, exited.result(), "the new incarnation exited")
                    break
                result = await runtime.probe(project, variant, handle, check)
                last = CheckRecord(clock.wall(), result.ok, result.exit_code, result.output[-2000:])
                if tracker.record(result.ok, clock.now()) == "unhealthy":
                    break
        finally:
            exited.cancel()
        if tracker.status != "healthy":
            st.update = "stopping the new incarnation, which failed its healthcheck"
            await runtime.stop(handle, svc.stop_signal, svc.stop_grace_period)
            lines = await engine.tail(name)
            st.update = ""
            engine.emit("update", name, f"{name} update failed: the new incarnation is not healthy; the old one serves")
            output = last.output.strip()[-300:] if last else ""
            exit_code = last.exit_code if last else None
            message = (
                f"{name}: the update's new incarnation failed its healthcheck (last check: exit code {exit_code}, "
                f"{output!r}); it was stopped and the old incarnation keeps serving"
            )
            if lines:
                message += "; last log lines:\n    " + "\n    ".join(lines[-10:])
            raise RolloutFailed(message)
        await runtime.switch(project, svc, variant)
    except BaseException:
        if st.update:
            # cancelled (a down) or a runtime error: never leave the new incarnation running untracked
            await runtime.stop(handle, svc.stop_signal, svc.stop_grace_period)
            st.update = ""
        raise
    switched = clock.now() - began
    st.update = "draining the old incarnation"
    st.switched_to = dict(handle.record)  # saved with the switch: a daemon that dies now, the next one finishes it
    engine.emit("update", name, f"{name} switched to the new incarnation after {switched:.2f}s; the old one drains")
    await engine.stop_runner(name)
    await runtime.settle(project, svc, variant)
    st.update, st.switched_to = "", None
    # the runner takes the new incarnation over as healthy (it was probed so): dependents never see a gap
    st.last_check, st.state, st.health = last, "healthy", "healthy"
    st.handle, st.started_at = handle, handle.started_at
    st.restarted(clock.wall(), "update")  # planned: never counted as flapping
    await engine.up([name], adopted={name: handle}, with_dependencies=False)
    return f"updated start-first (switched after {switched:.2f}s)"


async def finish_switched(
    runtime: Runtime, project: Project, name: str, old: Handle | None, record: dict[str, Any]
) -> Handle | None:
    """A supervisor died between the switch to ``record`` (the new incarnation) and the old one's stop: stop the
    old (``old``: adopted, or None), make the new one the service's only and return it; None when the new one is
    gone too (nothing to finish: the caller starts the service as it would)."""
    svc = project.services[name]
    new = await runtime.adopt(project, svc, record)
    if new is None:
        return None
    if old is not None and old.ident != new.ident:
        await runtime.stop(old, svc.stop_signal, svc.stop_grace_period)
    await runtime.finish_update(project, svc, new)
    return new


__all__ = ["NotSupported", "Plan", "RolloutFailed", "finish_switched", "plan", "roll", "update_order"]
