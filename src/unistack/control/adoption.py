"""Taking over an instance: what a starting daemon does with what a previous one left (from ``state.json``).

Owns the handover's far side: each saved service's incarnation re-adopted through the runtime (its status as it
was saved: state, restarts, last check), a ``restart`` the previous daemon died in finished (the old incarnation
stopped, a new one started), a start-first update it died in after the switch finished (``rollout``'s
``finish_switched``), a ``down`` it died in finished, incarnations no longer wanted stopped, untracked ones (started
just before the previous daemon died) stopped, and the wanted services handed to the engine. It never writes the
state file (the daemon's recorder does) and never serves requests.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from unistack.config import model
from unistack.config.model import Project
from unistack.control import state
from unistack.engine.events import Event
from unistack.engine.health import CheckRecord
from unistack.engine.rollout import finish_switched
from unistack.engine.states import RESTART_CAUSES, STATES, RestartCause
from unistack.runtimes import PROCESS, create_runtime

if TYPE_CHECKING:
    from unistack.control.daemon import Daemon
    from unistack.runtimes.base import Handle, Runtime


async def restore(daemon: Daemon) -> None:
    """Take over what a previous daemon left: re-adopt live services, restart the rest as wanted."""
    saved = state.read_state(daemon.state_dir)
    raw_project = state.read_project(daemon.state_dir) if saved and saved.get("up") else None
    if not saved or raw_project is None:
        # nothing to re-adopt; still never leave an incarnation of this instance running untracked
        await stop_strays(daemon, create_runtime((saved or {}).get("runtime", PROCESS)), set())
        return
    project = model.from_data(raw_project, Project)
    daemon.configure(project, saved.get("runtime", PROCESS), saved.get("environ") or {})
    engine, runtime = daemon.require()
    down = saved.get("down")  # the previous daemon died during a `down`: finish it, start nothing
    adopted: dict[str, Handle] = {}
    wanted: list[str] = []
    for name, info in (saved.get("services") or {}).items():
        record = info.get("record")
        service = project.services.get(name)
        # an update between its switch and the old one's stop is saved as not wanted (the engine's runner of
        # the old incarnation stops first): the new incarnation is wanted
        desired = bool(info.get("desired") or (info.get("switched_to") and down is None))
        handle = await runtime.adopt(project, service, record) if record and service else None
        finishing = handle is not None and service is not None and bool(info.get("restarting")) and down is None
        if finishing and handle is not None and service is not None:
            # it died during a `restart` of this service: finish it (the old incarnation goes, a new one starts)
            await runtime.stop(handle, service.stop_signal, service.stop_grace_period)
            daemon.event(Event("stopped", name, f"{name} stopped: finishing its restart", time.time()))
            handle = None
        if (switched := info.get("switched_to")) and service is not None and down is None:
            # it died during a start-first update, after the switch: the new incarnation serves; the old goes
            new = await finish_switched(runtime, project, name, handle, switched)
            if new is not None:
                daemon.event(Event("update", name, f"{name} updated: finished the switch to the new one", time.time()))
                handle = new
        if name in engine.status:
            st = engine.status[name]
            st.restarts = int(info.get("restarts", 0))
            st.exit_code = info.get("exit_code")
            # exited, fatal or stopped: show it as it was; a live one keeps "healthy" if it is the same
            # incarnation (the engine checks, and its next probe says otherwise if need be)
            st.state = saved_state if (saved_state := info.get("state")) in STATES else "created"
            st.restarted_at = [float(at) for at in info.get("restarted_at") or []]
            st.recent_restarts = restarts_saved(info)
            if finishing and (cause := info.get("restart_cause")) in RESTART_CAUSES:
                st.restarted(time.time(), cause)  # the restart it finishes, as the previous daemon would have
            if check := info.get("last_check"):
                st.last_check = CheckRecord(**check)
        if handle is not None and (service is None or (not desired and down is None)):
            await runtime.stop(handle, "SIGTERM", 10.0)  # left running but no longer wanted
            daemon.event(Event("stopped", name, f"{name} stopped: no longer part of the instance", time.time()))
            continue
        if handle is not None:
            adopted[name] = handle
        if desired:
            wanted.append(name)
    await stop_strays(daemon, runtime, {h.ident for h in adopted.values()})
    if isinstance(down, dict):  # what is still alive is stopped in reverse order, then the instance is gone
        daemon.event(Event("stopping", None, "finishing the `down` a previous supervisor began", time.time()))
        for name, handle in adopted.items():
            engine.status[name].handle = handle
        await daemon.down(bool(down.get("volumes")), down.get("timeout"))
        return
    if wanted:  # exactly those: a finished one-shot (a migration) must not run again
        await engine.up(wanted, adopted=adopted, with_dependencies=False)
    daemon.recorder.save_now()
    daemon.follow_manifests()


def restarts_saved(info: dict[str, Any]) -> list[tuple[float, RestartCause]]:
    """The recent restarts a previous daemon saved, with their causes; one of the version before causes were saved
    has only its unplanned ones (``restarted_at``)."""
    if "recent_restarts" not in info:
        return [(float(at), "exited") for at in info.get("restarted_at") or []]
    return [(float(at), cause) for at, cause in info["recent_restarts"] if cause in RESTART_CAUSES]


async def stop_strays(daemon: Daemon, runtime: Runtime, known: set[str]) -> None:
    """Stop incarnations that no daemon tracks (started just before the previous daemon died)."""
    for stray in await runtime.strays(daemon.state_dir, known):
        await runtime.stop(stray, "SIGTERM", 10.0)
        daemon.event(
            Event("stopped", stray.service, f"{stray.service} ({stray.ident}) stopped: untracked", time.time())
        )
