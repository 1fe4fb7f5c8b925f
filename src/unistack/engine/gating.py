"""Start gating: a service waits until each of its dependencies meets its ``depends_on`` condition.

Owns the wait (woken by the engine's changes of the services it depends on, never by polling), the ``waiting``
event (once for all a service begins to wait for) and the ``blocked`` state while a dependency will not become
available, with the reason. The rule for one dependency is ``status.dependency_verdict`` (pure); starting the
service once the wait is over is the runner's. It never starts or stops anything.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from unistack.engine.status import dependency_verdict

if TYPE_CHECKING:
    from unistack.config.model import Dependency
    from unistack.engine.supervisor import Engine


async def wait_dependencies(engine: Engine, name: str) -> bool:
    """Wait until every dependency meets its condition. Marks the service blocked while one cannot."""
    svc = engine.project.services[name]
    st = engine.status[name]
    announced: set[str] = set()
    if svc.depends_on:
        # runners begin in start order, in one go: let those with nothing to wait for get their processes
        # started before the others announce (and log) what they wait for
        await asyncio.sleep(0)

    def check() -> bool:
        verdicts = {dep: verdict(engine, dep, want) for dep, want in svc.depends_on.items()}
        if news := [dep for dep, said in verdicts.items() if said == "wait" and dep not in announced]:
            announced.update(news)  # one event for all a service begins to wait for, however many
            waits = ", ".join(f"{dep} ({svc.depends_on[dep].condition})" for dep in news)
            engine.emit("waiting", name, f"{name} waits for {waits}")
        problems = [v for v in verdicts.values() if v not in {"ok", "wait"}]
        if problems:
            if st.state != "blocked" or st.reason != problems[0]:
                st.state, st.reason = "blocked", problems[0]
                engine.emit("blocked", name, f"{name} is blocked: {problems[0]}")
            return False
        if st.state == "blocked":
            st.state, st.reason = "created", ""
            engine.changed_now(name)
        return all(v == "ok" for v in verdicts.values())

    await engine.wait_until(check, svc.depends_on)
    return True


def verdict(engine: Engine, dep: str, want: Dependency) -> str:
    """'ok', 'wait', or why ``dep`` will not meet ``want`` as things stand (``status.dependency_verdict``)."""
    return dependency_verdict(
        dep, want, engine.status.get(dep), engine.project.services.get(dep), supervised=dep in engine.tasks
    )
