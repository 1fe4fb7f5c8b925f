"""Update handling: bringing a running instance in line with a changed project, as Compose's ``up`` does.

Owns what an ``up`` on a running instance does to each service: removed ones stopped, changed ones recreated
(stop-first, or start-first through ``rollout`` where the plan allows it, falling back to stop-first where the
runtime cannot run two incarnations), outdated ones (a rebuilt image) set up beside the old incarnation first and
kept running as they are when that setup fails, missing ones started; and the summary of what was done. It never
starts, probes or stops an incarnation itself (the engine's runners and stop path do), never imports subprocess,
docker or sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from unistack.config.model import Project, replace
from unistack.engine import rollout, runner
from unistack.engine.status import ServiceStatus
from unistack.errors import NotSupported

if TYPE_CHECKING:
    from unistack.engine.supervisor import Engine


async def reconcile(engine: Engine, project: Project, services: Iterable[str] | None = None) -> dict[str, str]:
    """Bring a running instance in line with ``project``. Returns what was done, by service."""
    done: dict[str, str] = {}
    old = engine.project
    removed = [n for n in old.services if n not in project.services]
    changed = [n for n in project.services if n in old.services and old.services[n] != project.services[n]]
    candidates = [n for n in engine.selection(services, project) if n in old.services and n not in changed]
    outdated = await _outdated(engine, project, candidates)
    kept = await _set_up_replacements(engine, project, outdated)
    done.update(kept)
    changed += [n for n in outdated if n not in kept]
    if removed:
        await engine.stop(removed)
        done.update(dict.fromkeys(removed, "removed"))
    rolling = [n for n in changed if _rolls_start_first(engine, project, n, done)]
    changed = [n for n in changed if n not in rolling]
    if changed:
        await engine.stop([n for n in changed if engine.is_live(n)])
    engine.project = project
    for name in removed:
        engine.status.pop(name, None)
        engine.tasks.pop(name, None)
    for name in project.services:
        engine.status.setdefault(name, ServiceStatus(name))
    for name in changed:
        done[name] = f"recreated ({outdated[name]})" if name in outdated else "recreated"
        engine.status[name] = ServiceStatus(name)  # Compose resets a recreated container's counters
    selected = engine.selection(services)
    for name in selected:
        task = engine.tasks.get(name)
        if (task is None or task.done()) and name not in done:
            done[name] = "started"
    await engine.up(selected)
    if rolling:
        await _roll(engine, rolling, done, old)
    return done


def _rolls_start_first(engine: Engine, project: Project, name: str, done: dict[str, str]) -> bool:
    """Whether changed ``name`` is replaced start-first (``rollout.plan``); why not goes in ``done``."""
    st = engine.status[name]
    chosen = rollout.plan(project.services[name], st.state == "healthy" and engine.is_live(name))
    if chosen.reason:
        done[name] = f"recreated stop-first ({chosen.reason})"
    return chosen.order == "start-first"


async def _roll(engine: Engine, names: list[str], done: dict[str, str], old: Project) -> None:
    """Replace ``names`` start-first, all at once; a runtime that cannot run two incarnations gets them
    replaced stop-first instead; every failed update named together (the old incarnations keep serving)."""
    results = await asyncio.gather(*(rollout.roll(engine, n) for n in names), return_exceptions=True)
    failed: list[str] = []
    fallback: list[str] = []
    for name, result in zip(names, results, strict=True):
        if isinstance(result, NotSupported):
            done[name] = f"recreated stop-first ({result})"
            fallback.append(name)
        elif isinstance(result, rollout.RolloutFailed):
            done[name] = "kept: the update failed"
            failed.append(str(result))
            # the old incarnation keeps serving, so its version is the one running: what a restart starts
            # again and what a new daemon adopts (the next `up` tries the update again)
            engine.project = replace(engine.project, services={**engine.project.services, name: old.services[name]})
        elif isinstance(result, BaseException):
            raise result
        else:
            done[name] = result
    if fallback:
        await engine.stop(fallback)
        for name in fallback:
            engine.status[name] = ServiceStatus(name)
        await engine.up(fallback, with_dependencies=False)
    if failed:
        raise rollout.RolloutFailed("\n".join(failed))


async def _outdated(engine: Engine, project: Project, names: Iterable[str]) -> dict[str, str]:
    """The live services (of those, unchanged in the files) whose incarnation the runtime says is out of date
    (a rebuilt image), with why. One the runtime cannot check is left running as it is."""
    live = {n: h for n in names if n in engine.project.services and (h := engine.status[n].handle) is not None}
    reasons = await asyncio.gather(
        *(engine.runtime.outdated(project, project.services[n], h) for n, h in live.items()), return_exceptions=True
    )
    return {name: why for name, why in zip(live, reasons, strict=True) if isinstance(why, str)}


async def _set_up_replacements(engine: Engine, project: Project, outdated: dict[str, str]) -> dict[str, str]:
    """Run the setup step (the build) of each outdated service's replacement while the old incarnation still
    runs, so it is down only for the restart. Those whose setup fails keep running as they are: returned with
    why (the new setup runs again, quickly, when the runner starts the replacement)."""

    async def one(name: str) -> str | None:
        result = await runner.set_up(engine, project, name, f" its replacement ({outdated[name]})")
        if result is None or result.ok:
            return None
        last = result.output.strip().splitlines()[-1:] or [f"exit code {result.exit_code}"]
        engine.emit("error", name, f"{name} keeps running as it was: its setup failed: {last[0]}")
        return f"not recreated: its setup failed ({last[0]})"

    results = await asyncio.gather(*(one(name) for name in outdated))
    return {name: why for name, why in zip(outdated, results, strict=True) if why is not None}
