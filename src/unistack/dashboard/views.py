"""What the page shows, built from what the daemon reports (pure): each service's view (its ``ps`` row, its
dependencies, uptime, stats, restart history and address), the graph's edges with the one that blocks a waiting
service and why, the instance's entry address, and event-log lines as records. No I/O, no clock of its own.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from unistack.config.model import Project
from unistack.dashboard.records import Edge, EventRecord, RestartRecord, ServiceView, Snapshot, Stats
from unistack.engine.events import Event, iso
from unistack.engine.states import LIVE, ServiceRow

HISTORY = 20  # restarts kept per service
WAITING = frozenset({"created", "blocked", "restarting"})  # states in which a service may wait for a dependency


def depends_on(project: Project) -> dict[str, dict[str, str]]:
    """Service -> {dependency: condition}, as the files declare it."""
    return {
        name: {dep: want.condition for dep, want in svc.depends_on.items()} for name, svc in project.services.items()
    }


def address(row: ServiceRow) -> str | None:
    """The first published TCP port of the service as an http address on the host."""
    for port in row.ports:
        if port.protocol == "tcp":
            host = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
            host = f"[{host}]" if ":" in host else host
            return f"http://{host}:{port.host_port}/"
    return None


def entry(rows: Iterable[ServiceRow], needs: Mapping[str, Mapping[str, str]]) -> str | None:
    """The instance's entry address: of the service that publishes a port and that nothing depends on (the
    proxy, usually); else of the first that publishes one."""
    depended = {dep for deps in needs.values() for dep in deps}
    published = [(row.service, url) for row in rows if (url := address(row)) is not None]
    for service, url in published:
        if service not in depended:
            return url
    return published[0][1] if published else None


def met(condition: str, dependency: ServiceRow | None) -> bool:
    """Whether ``dependency`` (None: not running at all) meets ``condition`` as it stands."""
    if dependency is None:
        return False
    if condition == "service_healthy":
        return dependency.state == "healthy"
    if condition == "service_completed_successfully":
        return dependency.state == "exited" and dependency.exit_code == 0
    return dependency.state in LIVE or dependency.state == "exited"


def edges(rows: Iterable[ServiceRow], needs: Mapping[str, Mapping[str, str]]) -> list[Edge]:
    """Every dependency as an edge; blocking when the dependent is not running because this one is not met."""
    by_name = {row.service: row for row in rows}
    found: list[Edge] = []
    for name, deps in needs.items():
        row = by_name.get(name)
        for dep, condition in deps.items():
            blocking = row is not None and row.state in WAITING and not met(condition, by_name.get(dep))
            found.append(
                Edge(
                    dependent=name,
                    to=dep,
                    condition=condition,
                    blocking=blocking,
                    reason=_why(row, dep, condition, by_name.get(dep)) if blocking and row is not None else "",
                )
            )
    return found


def _why(row: ServiceRow, dep: str, condition: str, dependency: ServiceRow | None) -> str:
    """The engine's sentence when it names ``dep``, else one saying what ``row`` waits for."""
    if row.reason and re.search(rf"(?<![\w-]){re.escape(dep)}(?![\w-])", row.reason):
        return row.reason.strip().splitlines()[0]
    now = f"{dep} is {dependency.state}" if dependency is not None else f"{dep} is not running"
    return f"waits until {dep} is {condition.removeprefix('service_').replace('_', ' ')} ({now})"


def uptime(row: ServiceRow, now: float | None) -> float | None:
    """Seconds since the live incarnation started (None: not live, or ``now`` None)."""
    if now is None or row.state not in LIVE or not row.started_at:
        return None
    try:
        started = datetime.fromisoformat(row.started_at).timestamp()
    except ValueError:
        return None
    return max(0.0, round(now - started, 3))


class History:
    """Restarts per service (the newest ``HISTORY`` of each): an ``exited`` event once a ``restarting`` or
    ``starting`` of the same service follows it (a one-shot's exit that nothing restarts is no restart)."""

    def __init__(self) -> None:
        self._by_service: dict[str, deque[RestartRecord]] = {}
        self._exited: dict[str, RestartRecord] = {}

    def add(self, event: EventRecord) -> None:
        if event.service is None:
            return
        if event.kind == "exited":
            code = event.data.get("exit_code")
            self._exited[event.service] = RestartRecord(at=event.at, exit_code=code if isinstance(code, int) else None)
        elif event.kind in ("restarting", "starting") and (record := self._exited.pop(event.service, None)):
            self._by_service.setdefault(event.service, deque(maxlen=HISTORY)).append(record)

    def of(self, service: str) -> list[RestartRecord]:
        return list(self._by_service.get(service, ()))


def snapshot(
    rows: Iterable[ServiceRow],
    needs: Mapping[str, Mapping[str, str]],
    stats: Mapping[str, Stats],
    history: History,
    now: float | None,
) -> Snapshot:
    """Every service's view and the edges; ``now`` None leaves the uptimes out (to compare two snapshots)."""
    listed = list(rows)
    views = [
        ServiceView(
            **msgspec.structs.asdict(row),
            depends_on=dict(needs.get(row.service, {})),
            uptime_s=uptime(row, now),
            stats=stats.get(row.service, Stats()) if row.state in LIVE else Stats(),
            restart_history=history.of(row.service),
            entry=address(row),
        )
        for row in listed
    ]
    return Snapshot(services=views, edges=edges(listed, needs))


def snapshot_without_uptime(snap: Snapshot) -> Snapshot:
    """The same snapshot with the uptimes left out: two polls differ only when something other than time did."""
    services = [msgspec.structs.replace(view, uptime_s=None) for view in snap.services]
    return msgspec.structs.replace(snap, services=services)


def event_record(line: str) -> EventRecord | None:
    """One line of events.jsonl as a record; None for a torn or foreign line."""
    try:
        event = Event.from_json(line)
    except (ValueError, KeyError, TypeError):
        return None
    return EventRecord(
        kind=str(event.kind),
        service=event.service,
        message=event.message,
        at=iso(event.at) or "",
        data=event.data if isinstance(event.data, dict) else {},
    )
