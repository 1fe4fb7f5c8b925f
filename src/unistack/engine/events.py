"""Events: what happened to which service, in a form the printer, the event log and notifiers share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

EventKind = Literal[
    "setup",  # the setup step (install, build) began or ended
    "install",  # a dependency manifest changed: installing into the running service, what it installed, restarting
    "starting",  # an incarnation is being started
    "started",  # it runs (no healthcheck) or its checks begin
    "healthy",
    "unhealthy",
    "check_failed",  # one failed probe that did not (yet) make the service unhealthy
    "exited",
    "restarting",  # a restart is scheduled (data: delay, attempt)
    "fatal",  # the restart budget is spent
    "blocked",  # a dependency will not become available
    "waiting",  # waiting for a dependency
    "stopping",
    "stopped",
    "killed",  # the stop grace period ran out
    "update",  # a start-first update: the new incarnation started beside the old, switched to, or failed
    "adopted",  # a live incarnation was taken over from a previous supervisor
    "error",  # something went wrong that the user should see
    "notify_failed",
]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    service: str | None
    message: str
    at: float  # epoch seconds
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # the fields by hand, not dataclasses.asdict (which deep-copies ``data``): a start of 100 services that
        # depend on 10 each writes ~1000 events in one go
        fields = {"kind": self.kind, "service": self.service, "message": self.message, "at": self.at, "data": self.data}
        return json.dumps(fields, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Event:
        raw = json.loads(text)
        return cls(raw["kind"], raw["service"], raw["message"], float(raw["at"]), raw.get("data") or {})


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC, or None."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
