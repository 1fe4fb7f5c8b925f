"""The closed vocabulary of a service's state and health, the sets of states the other modules ask about
(defined here once), and the record ``ps`` shows for a service: what crosses the control socket, what
``ps --format json`` prints, what ``validate`` and ``watch`` read. Data only: no I/O, no engine.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

State = Literal[
    "created",  # known, not started (yet, or again)
    "starting",  # an incarnation runs; its healthcheck has not passed yet
    "running",  # runs (no healthcheck)
    "healthy",
    "unhealthy",
    "restarting",  # a restart is scheduled (backoff)
    "exited",  # ended by itself; ``exit_code`` says how
    "fatal",  # the restart budget is spent, or its setup failed
    "blocked",  # a dependency will not become available; ``reason`` names it
    "stopped",  # stopped on request
]
Health = Literal["none", "starting", "healthy", "unhealthy"]

STATES: Final[tuple[State, ...]] = State.__args__  # type: ignore[attr-defined]
LIVE: Final[frozenset[State]] = frozenset({"starting", "running", "healthy", "unhealthy"})
"""An incarnation runs (or is being started)."""
FAILED: Final[frozenset[State]] = frozenset({"fatal", "blocked"})
"""Will not become ready by itself (``exited`` with a non-zero code fails too: see ``ServiceRow.failed``)."""
SETTLED: Final[frozenset[State]] = frozenset({"created", "exited", "fatal", "blocked", "stopped"})
"""Nothing runs and nothing will start without a command (``up`` in the foreground ends when all are)."""


class LastCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The last health probe: when (ISO 8601, UTC), its verdict, exit code and the tail of its output."""

    at: str
    ok: bool
    exit_code: int | None
    output: str


class PublishedPort(msgspec.Struct, frozen=True, kw_only=True):
    """Where the service is reachable from the host."""

    host_ip: str
    host_port: int
    target: int
    protocol: str


class ServiceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One service as ``ps`` shows it (and ``ps --format json`` prints it)."""

    service: str
    state: State
    health: Health
    restarts: int
    exit_code: int | None
    started_at: str | None  # ISO 8601, UTC, of the current incarnation
    last_check: LastCheck | None
    pid: int | None
    container: str | None
    ports: list[PublishedPort]
    reason: str
    restarted_at: list[str] = msgspec.field(default_factory=list)  # ISO 8601 of recent restarts, oldest first
    update: str = ""  # a start-first update in progress: what it does now (empty: none)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def failed(self) -> bool:
        return self.state in FAILED or (self.state == "exited" and (self.exit_code or 0) != 0)


_decoder = msgspec.json.Decoder(list[ServiceRow])


def rows_from(data: object) -> list[ServiceRow]:
    """The rows of a ``ps`` reply (plain JSON data), checked against the record."""
    return msgspec.convert(data, list[ServiceRow])


def rows_from_json(text: bytes | str) -> list[ServiceRow]:
    return _decoder.decode(text)


def rows_to_builtins(rows: list[ServiceRow]) -> list[dict[str, object]]:
    data: list[dict[str, object]] = msgspec.to_builtins(rows)
    return data
