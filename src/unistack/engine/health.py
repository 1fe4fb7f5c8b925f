"""Healthcheck bookkeeping, pure: when to probe next and what a probe result means.

Docker's rules: probes run every ``start_interval`` during ``start_period`` and every ``interval`` after it;
failures inside the start period do not count; the first success makes the service healthy (and ends the start
period); ``retries`` consecutive counted failures make it unhealthy; a success makes it healthy again.
``retries: 0`` means Docker's default of 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from unistack.config.model import Healthcheck
from unistack.engine.states import Health

__all__ = ["CheckRecord", "Health", "HealthTracker"]


@dataclass(frozen=True)
class CheckRecord:
    """The last probe, kept for ``ps``."""

    at: float  # epoch seconds
    ok: bool
    exit_code: int | None
    output: str


class HealthTracker:
    def __init__(self, check: Healthcheck, started: float) -> None:
        self.check = check
        self.started = started  # monotonic
        self.status: Health = "starting"
        self.failures = 0
        self.ever_healthy = False

    def in_start_period(self, now: float) -> bool:
        return not self.ever_healthy and now - self.started < self.check.start_period

    def next_delay(self, now: float) -> float:
        return self.check.start_interval if self.in_start_period(now) else self.check.interval

    def record(self, ok: bool, now: float) -> Health | None:
        """Apply one probe result; return the new status when it changed."""
        before = self.status
        if ok:
            self.failures = 0
            self.ever_healthy = True
            self.status = "healthy"
        elif not self.in_start_period(now):
            self.failures += 1
            if self.failures >= (self.check.retries or 3):
                self.status = "unhealthy"
        return self.status if self.status != before else None
