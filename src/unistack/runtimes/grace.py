"""The grace period of a stop, one definition for both runtimes: the exit waited for, then the kill.

Owns the waits of a stop once its signal went out: the exit awaited for ``grace`` seconds, and past them the kill
and at most ``KILL_WAIT`` seconds more (``then_kill``); a bounded wait for the exit of one that was killed at once
(``at_most``: a frozen incarnation). ``asyncio.timeout`` throughout, never ``wait_for``: on Python 3.11
``wait_for`` can swallow a cancellation that races with the inner result, and a probe loop that misses its
cancellation never ends (a stop then hangs). Never sends a signal itself (the runtime's ``kill`` does) and never
decides when to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from unistack.runtimes.base import StopResult

KILL_WAIT = 10.0  # seconds to wait for an exit after SIGKILL

Wait = Callable[[], Awaitable[int | None]]


async def then_kill(wait: Wait, grace: float, kill: Callable[[], Awaitable[object]]) -> StopResult:
    """``wait`` for up to ``grace`` seconds; past them ``kill`` and wait at most ``KILL_WAIT`` seconds more."""
    try:
        async with asyncio.timeout(grace):
            code = await wait()
    except TimeoutError:
        await kill()
        return StopResult(killed=True, exit_code=await at_most(KILL_WAIT, wait))
    return StopResult(killed=False, exit_code=code)


async def at_most(seconds: float, wait: Wait) -> int | None:
    """The exit code ``wait`` gives within ``seconds``, else None."""
    code: int | None = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            code = await wait()
    return code
