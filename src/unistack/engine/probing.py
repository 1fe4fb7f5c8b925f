"""Health watching: the probe loop of one live incarnation.

Owns when probes run (a grid of intervals counted from the incarnation's start, or from now for one adopted or
watched again), running each through the runtime, keeping the last check's record, the ``check_failed``,
``healthy`` and ``unhealthy`` events and the status's health. The verdict after each probe is
``health.HealthTracker``'s (pure); what an unhealthy service becomes is the runner's. It never starts, stops or
restarts anything, never imports subprocess, docker or sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unistack.engine.health import CheckRecord, HealthTracker

if TYPE_CHECKING:
    from unistack.engine.supervisor import Engine
    from unistack.runtimes.base import Handle


async def probe_loop(engine: Engine, name: str, handle: Handle, forever: bool = False) -> None:
    """Probe until the service turns unhealthy (return), or forever when asked."""
    svc = engine.project.services[name]
    check = svc.healthcheck
    assert check is not None
    st = engine.status[name]
    clock = engine.clock
    started = clock.now() - max(0.0, clock.wall() - handle.started_at)
    tracker = HealthTracker(check, started=started)
    if forever:
        tracker.status, tracker.ever_healthy = st.health, True
    # probes are due on a grid of intervals counted from the incarnation's start (a new one: however long the
    # runtime took to report it) or from now: neither the time a probe takes nor a late wake-up on a busy
    # machine shifts the ones after it; an overdue probe runs at once, and the grid keeps its phase
    grid = started if not forever and not handle.adopted else clock.now()  # the last point of the grid
    while True:
        now = clock.now()
        step = tracker.next_delay(now)
        grid += step
        if grid > now:
            await clock.sleep(grid - now)
        elif step > 0:
            grid += (now - grid) // step * step
        result = await engine.runtime.probe(engine.project, svc, handle, check)
        st.last_check = CheckRecord(clock.wall(), result.ok, result.exit_code, result.output[-2000:])
        change = tracker.record(result.ok, clock.now())
        if change is None:
            if not result.ok and tracker.failures:
                engine.emit(
                    "check_failed",
                    name,
                    f"{name} check failed ({tracker.failures}/{check.retries or 3}): " + result.output.strip()[-200:],
                )
            if st.state == "unhealthy":  # a dependent's "blocked" reason quotes the latest check output
                engine.changed_now(name)
            else:  # nobody's condition changed: no need to wake anyone
                engine.on_change()
            continue
        st.health = change
        if change == "healthy":
            st.state = "healthy"
            engine.emit("healthy", name, f"{name} is healthy")
        else:
            st.state = "unhealthy"
            engine.emit(
                "unhealthy",
                name,
                f"{name} is unhealthy after {tracker.failures} failed checks: {result.output.strip()[-300:]}",
                exit_code=result.exit_code,
            )
            if not forever:
                return
