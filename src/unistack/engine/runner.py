"""One service's runner: the life of a supervised service, from its setup to its end.

Owns the loop a service's asyncio task runs: its setup step (a failure makes it fatal), the wait for its
dependencies (``gating``), the start of an incarnation, watching it until it exits or turns unhealthy (the probes
are ``probing``'s), the restart policy's verdict on each end (``policy.decide``: exit, restart after a backoff, or
fatal), the ``exited`` and ``service_fatal`` events with the log's last lines, and the restart of dependents that
ask ``restart: true``. It never decides the order of services, never stops one on request (``supervisor`` does),
never imports subprocess, docker or sockets and never formats output beyond its events' messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from unistack.engine import exits, gating, policy, probing
from unistack.engine.events import iso
from unistack.errors import PermanentFailure, RuntimeFailure

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.engine.supervisor import Engine
    from unistack.runtimes.base import Handle, ProbeResult


async def run(engine: Engine, name: str, adopted: Handle | None, setup: bool = True) -> None:
    """The service's task: set up, wait, start, supervise and restart it until the policy says it is done."""
    st = engine.status[name]
    try:
        if adopted is None:
            if (setup and not await _setup(engine, name)) or not await gating.wait_dependencies(engine, name):
                return
            handle = await start(engine, name)
        else:
            handle = adopted
            # healthy as the previous supervisor last saw this very incarnation (adopt() matched its record):
            # stays ready for dependents and `--wait` across a handover; the next probe says otherwise if need be
            was_healthy = st.state == "healthy"
            st.handle, st.started_at, st.state = handle, handle.started_at, "running"
            svc = engine.project.services[name]
            if svc.healthcheck is not None:
                st.state, st.health = ("healthy", "healthy") if was_healthy else ("starting", "starting")
            engine.emit("adopted", name, f"{name} adopted (pid/container {handle.ident})")
        while True:
            if handle is None and name in engine.cannot_start:  # retrying cannot heal it: fatal at once
                await go_fatal(engine, name, None, f"could not start: {engine.cannot_start[name]}", with_logs=False)
                return
            if handle is None:
                exit_code: int | None = None
                unhealthy = False
                ran_for = 0.0
                how = f"could not start: {st.reason}"
            else:
                began = engine.clock.now() - max(0.0, engine.clock.wall() - handle.started_at)
                exit_code, unhealthy, how = await _supervise(engine, name, handle)
                ran_for = engine.clock.now() - began
            svc = engine.project.services[name]
            st.attempts = policy.attempts_after_run(svc.restart, st.attempts, ran_for)
            decision = policy.decide(
                svc.restart, exit_code=exit_code, unhealthy=unhealthy, attempts=st.attempts, ended=how
            )
            if decision.action == "exit":
                st.state, st.reason, st.handle = "exited", decision.reason, None
                engine.changed_now(name)
                return
            if decision.action == "fatal":
                await go_fatal(engine, name, exit_code, decision.reason)
                return
            st.attempts += 1
            st.restarted(engine.clock.wall(), "unhealthy" if unhealthy else "exited" if handle else "start-failed")
            st.state, st.health, st.reason = "restarting", "none", decision.reason
            engine.emit(
                "restarting",
                name,
                f"{name} {decision.reason}" + (f" in {decision.delay:g}s" if decision.delay else " now"),
                delay=decision.delay,
                attempt=st.attempts,
            )
            await engine.clock.sleep(decision.delay)
            handle = await start(engine, name)
            if handle is not None:
                for follower in engine.restart_followers(name):
                    engine.background(_restart_follower(engine, follower, name))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug or an unexpected runtime error must not kill the supervisor silently
        st.state, st.reason = "fatal", f"supervisor error: {exc!r}"
        engine.emit("error", name, f"{name}: supervisor error: {exc!r}")


async def _setup(engine: Engine, name: str) -> bool:
    """Run the service's setup step (in parallel with waiting services); a failure makes it fatal."""
    if engine.runtime.setup_step(engine.project.services[name]) is None:
        return True
    engine.status[name].reason = "setting up"  # still "created": nothing runs yet, so service_started is not met
    result = await set_up(engine, engine.project, name)
    if result is None or result.ok:
        return True
    await go_fatal(engine, name, result.exit_code, f"setup failed with exit code {result.exit_code}")
    return False


async def set_up(engine: Engine, project: Project, name: str, what: str = "") -> ProbeResult | None:
    """Run the service's setup step (of ``project``'s version of it), announced and reported in events; None
    when it has none."""
    svc = project.services[name]
    step = engine.runtime.setup_step(svc)
    if step is None:
        return None
    engine.emit("setup", name, f"{name} setting up{what}: {step}")
    result = await engine.runtime.setup(project, svc)
    if result.ok:
        engine.emit("setup", name, f"{name} set up")
    return result


async def start(engine: Engine, name: str) -> Handle | None:
    """Start an incarnation; None when the runtime could not (why: the status's reason)."""
    st, svc = engine.status[name], engine.project.services[name]
    st.state, st.reason, st.exit_code = "starting", "", None
    st.health = "starting" if svc.healthcheck else "none"
    engine.cannot_start.pop(name, None)
    engine.emit("starting", name, f"{name} starting")
    starting = asyncio.ensure_future(engine.runtime.start(engine.project, svc))
    try:
        handle = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # never lose an incarnation that was being started: hand it to the stop path
        with contextlib.suppress(Exception):
            st.handle = await starting
        raise
    except PermanentFailure as exc:  # the runner makes it fatal, in one event
        st.reason, st.handle, st.health = str(exc), None, "none"
        engine.cannot_start[name] = str(exc)
        return None
    except RuntimeFailure as exc:
        st.reason = str(exc)
        engine.emit("error", name, f"{name} could not start: {exc}")
        st.handle = None
        return None
    st.handle, st.started_at = handle, handle.started_at
    st.state = "starting" if svc.healthcheck else "running"
    engine.emit("started", name, f"{name} started ({handle.ident})", ident=handle.ident)
    return handle


async def _supervise(engine: Engine, name: str, handle: Handle) -> tuple[int | None, bool, str]:
    """Run until the incarnation exits (exit code, False, how it ended in words) or turns unhealthy and is stopped
    (code, True, "")."""
    svc = engine.project.services[name]
    exited = asyncio.create_task(engine.runtime.wait(handle), name=f"wait:{name}")
    watching: asyncio.Task[None] | None = None
    if svc.healthcheck is not None:
        watching = asyncio.create_task(probing.probe_loop(engine, name, handle), name=f"health:{name}")
    try:
        waiters: set[asyncio.Task[Any]] = {exited} | ({watching} if watching else set())
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            code = exited.result()
            return code, False, await _on_exit(engine, name, code, handle)
        # the probe loop ended: the service is unhealthy and the policy may restart it
        if svc.restart.mode == "no":
            # Compose semantics: an unhealthy service keeps running; keep watching its exit only
            if watching is not None:
                watching = asyncio.create_task(probing.probe_loop(engine, name, handle, forever=True))
            code = await exited
            return code, False, await _on_exit(engine, name, code, handle)
        exited.cancel()
        result = await engine.runtime.stop(handle, svc.stop_signal, svc.stop_grace_period)
        engine.report_kill(name, result, svc.stop_grace_period)
        engine.status[name].handle = None
        return result.exit_code, True, ""
    finally:
        pending = {task for task in (exited, watching) if task is not None and not task.done()}
        for task in pending:
            task.cancel()
        if pending:  # bounded: a helper task that ignores its cancellation must not hang a stop
            await asyncio.wait(pending, timeout=5)


async def _on_exit(engine: Engine, name: str, code: int | None, handle: Handle) -> str:
    """The ``exited`` event, with the log's last lines; returns how it ended, in words."""
    st = engine.status[name]
    st.exit_code, st.handle = code, None
    st.health = "none" if st.health == "none" else st.health
    unknown = engine.runtime.unknown_exit(handle) if code is None else exits.NOT_TOLD
    how = exits.ended(code, unknown, engine.runtime.exit_detail(handle))
    message = f"{name} {how}"
    data: dict[str, Any] = {"exit_code": code}
    if (number := exits.signal_of(code)) is not None:
        data["signal"] = number
    if code != 0:
        lines = await engine.tail(name)
        if lines:
            message += "; last log lines:\n    " + "\n    ".join(lines[-10:])
        data["last_logs"] = lines
    engine.emit("exited", name, message, **data)
    return how


async def go_fatal(engine: Engine, name: str, exit_code: int | None, reason: str, with_logs: bool = True) -> None:
    """Fatal, dependents blocked, notifiers told. ``with_logs`` False: the message leaves out the log's last lines
    (nothing ran: they would be an earlier incarnation's); the event still carries them."""
    st = engine.status[name]
    st.state, st.reason, st.handle = "fatal", reason, None
    lines = await engine.tail(name)
    check = st.last_check
    payload = {
        "event": "service_fatal",
        "project": engine.project.name,
        "service": name,
        "attempts": st.attempts,
        "restarts": st.restarts,
        "exit_code": exit_code,
        "reason": reason,
        "last_check": None
        if check is None
        else {"at": iso(check.at), "ok": check.ok, "exit_code": check.exit_code, "output": check.output},
        "last_logs": lines,
        "at": iso(engine.clock.wall()),
    }
    tail = "; last log lines:\n    " + "\n    ".join(lines[-10:]) if lines and with_logs else ""
    engine.emit("fatal", name, f"{name} is fatal: {reason}{tail}", **payload)


async def _restart_follower(engine: Engine, follower: str, cause: str) -> None:
    if not engine.is_live(follower):
        return
    engine.emit("restarting", follower, f"{follower} restarts because {cause} restarted")
    await engine.restart([follower], cause="dependency")
