"""Time as the engine sees it: a seam so tests can run years of backoff in microseconds."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds, for durations."""

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps users read."""

    async def sleep(self, seconds: float) -> None:
        """Wait; cancellable."""


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
