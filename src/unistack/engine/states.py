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
RestartCause = Literal[
    "exited",  # the supervisor restarted it after it exited (its restart policy)
    "unhealthy",  # ... after it failed its healthcheck
    "start-failed",  # ... after its start failed
    "requested",  # `unistack restart`, the dashboard's restart button, `watch`
    "dependency",  # a service it depends on with `restart: true` restarted
    "install",  # its dependency manifest changed and was installed into it
    "update",  # a start-first update replaced its incarnation
]

STATES: Final[tuple[State, ...]] = State.__args__  # type: ignore[attr-defined]
LIVE: Final[frozenset[State]] = frozenset({"starting", "running", "healthy", "unhealthy"})
"""An incarnation runs (or is being started)."""
FAILED: Final[frozenset[State]] = frozenset({"fatal", "blocked"})
"""Will not become ready by itself (``exited`` with a non-zero code fails too: see ``ServiceRow.failed``)."""
RESTART_CAUSES: Final[tuple[RestartCause, ...]] = RestartCause.__args__  # type: ignore[attr-defined]
UNPLANNED: Final[frozenset[RestartCause]] = frozenset({"exited", "unhealthy", "start-failed"})
"""Restarts nobody asked for: the supervisor healing a crash or a failed healthcheck (``validate``'s flapping)."""
SETTLED: Final[frozenset[State]] = frozenset({"created", "exited", "fatal", "blocked", "stopped"})
"""Nothing runs and nothing will start without a command (``up`` in the foreground ends when all are)."""


class LastCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The last health probe: when (ISO 8601, UTC), its verdict, exit code and the tail of its output."""

    at: str
    ok: bool
    exit_code: int | None
    output: str


class Restart(msgspec.Struct, frozen=True, kw_only=True):
    """One restart: when (ISO 8601, UTC) and why. A record without a cause counts as unplanned."""

    at: str
    cause: RestartCause = "exited"

    @property
    def planned(self) -> bool:
        return self.cause not in UNPLANNED


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
    # ISO 8601 of the recent unplanned restarts (the supervisor's: ``restarts`` counts them), oldest first
    restarted_at: list[str] = msgspec.field(default_factory=list)
    # every recent restart, planned or not, with its cause, oldest first (absent from a daemon of the previous
    # version: see ``unplanned_restarts``)
    restarts_recent: list[Restart] = msgspec.field(default_factory=list)
    update: str = ""  # a start-first update in progress: what it does now (empty: none)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def failed(self) -> bool:
        return self.state in FAILED or (self.state == "exited" and (self.exit_code or 0) != 0)

    def unplanned_restarts(self) -> list[str]:
        """When the supervisor restarted it after a crash or a failed healthcheck (ISO 8601, oldest first). A row
        from a daemon of the previous version carries no causes: every restart it recorded counts."""
        if self.restarts_recent:
            return [r.at for r in self.restarts_recent if not r.planned]
        return list(self.restarted_at)


_decoder = msgspec.json.Decoder(list[ServiceRow])


def rows_from(data: object) -> list[ServiceRow]:
    """The rows of a ``ps`` reply (plain JSON data), checked against the record."""
    return msgspec.convert(data, list[ServiceRow])


def rows_from_json(text: bytes | str) -> list[ServiceRow]:
    return _decoder.decode(text)


def rows_to_builtins(rows: list[ServiceRow]) -> list[dict[str, object]]:
    data: list[dict[str, object]] = msgspec.to_builtins(rows)
    return data
