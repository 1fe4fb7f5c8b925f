"""What the engine knows about each service, and the rule that says whether a dependency is met: data and
pure functions, no I/O and no asyncio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unistack.config.model import Dependency, Service
from unistack.engine import exits
from unistack.engine.events import iso
from unistack.engine.health import CheckRecord
from unistack.engine.states import (
    FAILED,
    LIVE,
    UNPLANNED,
    Health,
    LastCheck,
    PublishedPort,
    Restart,
    RestartCause,
    ServiceRow,
    State,
)
from unistack.runtimes.base import Handle

RESTARTS_KEPT = 20  # restart times kept per service (``ps``, ``validate``'s flapping check)


@dataclass
class ServiceStatus:
    """What ``ps`` shows for one service; mutated only by the engine."""

    service: str
    state: State = "created"
    health: Health = "none"
    restarts: int = 0
    attempts: int = 0  # restarts in the current run of failures (reset after a stable run)
    exit_code: int | None = None
    last_check: CheckRecord | None = None
    handle: Handle | None = None
    started_at: float | None = None  # epoch seconds of the current incarnation
    reason: str = ""  # why blocked / fatal / exited
    restarted_at: list[float] = field(default_factory=list)  # epoch seconds of the last unplanned restarts
    # epoch seconds and cause of the last restarts, planned or not, oldest first
    recent_restarts: list[tuple[float, RestartCause]] = field(default_factory=list)
    update: str = ""  # a start-first update in progress: its step (engine/rollout.py)
    switched_to: dict[str, Any] | None = None  # the new incarnation's record, from the switch until the old one went

    def restarted(self, at: float, cause: RestartCause) -> None:
        """A restart at ``at``: an unplanned one (the supervisor's) counts in ``restarts``, as Compose counts only
        the restart policy's; every one is kept with its cause."""
        if cause in UNPLANNED:
            self.restarts += 1
            self.restarted_at = [*self.restarted_at[-(RESTARTS_KEPT - 1) :], at]
        self.recent_restarts = [*self.recent_restarts[-(RESTARTS_KEPT - 1) :], (at, cause)]

    def ready(self, service: Service) -> bool:
        """Started as its dependents would want: healthy if it has a check, else running or done."""
        if self.state == "exited":
            return self.exit_code == 0
        if service.healthcheck is not None:
            return self.state == "healthy"
        return self.started()

    def started(self) -> bool:
        """Running: the runtime has returned its incarnation (not only been asked to start one)."""
        return self.state in LIVE and self.handle is not None

    def failed(self) -> bool:
        return self.state in FAILED or (self.state == "exited" and self.exit_code != 0)

    def row(self, service: Service) -> ServiceRow:
        check = self.last_check
        ident = self.handle.ident if self.handle else None
        return ServiceRow(
            service=self.service,
            state=self.state,
            health=self.health,
            restarts=self.restarts,
            exit_code=self.exit_code,
            started_at=iso(self.started_at),
            last_check=None
            if check is None
            else LastCheck(at=iso(check.at) or "", ok=check.ok, exit_code=check.exit_code, output=check.output),
            pid=int(ident) if ident and ident.isdigit() else None,
            container=ident if ident and not ident.isdigit() else None,
            ports=[
                PublishedPort(host_ip=p.host_ip, host_port=p.published, target=p.target, protocol=p.protocol)
                for p in service.ports
                if p.published is not None
            ],
            reason=self.reason,
            restarted_at=[iso(at) or "" for at in self.restarted_at],
            restarts_recent=[Restart(at=iso(at) or "", cause=cause) for at, cause in self.recent_restarts],
            update=self.update,
        )


@dataclass
class WaitReport:
    ready: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # service -> why, with check output and logs
    pending: dict[str, str] = field(default_factory=dict)  # service -> what it still waits for

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending


def dependency_verdict(
    dep: str, want: Dependency, status: ServiceStatus | None, service: Service | None, supervised: bool
) -> str:
    """'ok', 'wait', or a sentence saying why ``dep`` will not meet ``want`` as things stand.

    The sentence quotes only ``dep``'s own first-level reason: a dependency that is itself blocked is named, not
    quoted, so three levels of dependents each say what their direct dependency is, never a nested chain.

    ``status`` and ``service`` are the dependency's (None when it is not part of the project); ``supervised``
    says whether a runner owns it (an optional dependency nobody starts is simply skipped).
    """
    if status is None or service is None:
        return "ok" if not want.required else f"{dep} is not defined"
    if not supervised and not want.required:
        return "ok"
    check = status.last_check
    check_text = f"; last check: {check.output.strip()[-200:] or '-'}" if check and not check.ok else ""
    if status.state == "blocked":  # one level: its own blocker is in its own reason (and said above)
        return f"dependency {dep} is blocked"
    if status.state in FAILED:  # fatal: its own reason, never one quoted from further down
        own = status.reason.strip().splitlines()[0] if status.reason.strip() else "see above"
        return f"dependency {dep} is {status.state} ({own}){check_text}"
    if want.condition == "service_started":
        return "ok" if status.started() or status.state == "exited" else "wait"
    if want.condition == "service_healthy":
        if service.healthcheck is None:
            return f"dependency {dep} has no healthcheck, so it can never be service_healthy"
        if status.state == "healthy":
            return "ok"
        if status.state == "exited":
            return f"dependency {dep} {exits.ended(status.exit_code)} before it was healthy"
        if status.state == "unhealthy" and service.restart.mode == "no":
            return f'dependency {dep} is unhealthy and restart is "no"{check_text}'
        return "wait"
    # service_completed_successfully
    if status.state == "exited":
        if status.exit_code == 0:
            return "ok"
        return f"dependency {dep} {exits.ended(status.exit_code)} (service_completed_successfully)"
    return "wait"
