"""The dashboard API's records, as typed structs (docs/dashboard.md shows each): what ``/api/*`` answers and the
streams send. Data only: no I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from unistack.engine.states import ServiceRow


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """CPU (percent of one core, summed over the process tree or the container) and memory in use."""

    cpu_percent: float | None = None
    memory_bytes: int | None = None


class RestartRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One end of an incarnation, from the event log (``exited``)."""

    at: str
    exit_code: int | None


class ServiceView(ServiceRow, frozen=True, kw_only=True):
    """The ``ps --format json`` record of a service, plus what the page shows beside it."""

    depends_on: dict[str, str]  # dependency -> condition
    uptime_s: float | None
    stats: Stats
    restart_history: list[RestartRecord]
    entry: str | None  # this service's published address


class Edge(msgspec.Struct, frozen=True, kw_only=True, rename={"dependent": "from"}):
    """``dependent`` depends on ``to``; ``blocking`` when it waits (or is blocked) on it now, ``reason`` why."""

    dependent: str
    to: str
    condition: str
    blocking: bool
    reason: str


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    services: list[ServiceView]
    edges: list[Edge]


class DaemonInfo(msgspec.Struct, frozen=True, kw_only=True):
    pid: int | None
    connected: bool


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    runtime: str
    environment: str | None
    entry: str | None
    daemon: DaemonInfo


class EventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the daemon's ``logs/events.jsonl``, its time as ISO 8601."""

    kind: str
    service: str | None
    message: str
    at: str
    data: dict[str, Any]


class LogRecord(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    text: str


class CheckRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One validate check; ``verdict`` is validate's own word (pass, fail, skip), ``ok`` false only for fail."""

    name: str
    component: str
    ok: bool
    verdict: str
    message: str
    duration_s: float


class ValidateReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    checks: list[CheckRecord]
    finished_at: str


class ActionReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    services: list[ServiceView] | None = None
    error: str | None = None


def encode(value: object) -> bytes:
    return msgspec.json.encode(value)
