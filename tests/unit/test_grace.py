"""The grace period of a stop (runtimes/grace.py): the exit waited for, then the kill, then a bounded wait."""

from __future__ import annotations

import asyncio

from unistack.runtimes import grace


async def test_an_exit_within_the_grace_period_is_not_killed() -> None:
    kills: list[int] = []

    async def exited() -> int | None:
        return 0

    async def kill() -> None:
        kills.append(9)

    result = await grace.then_kill(exited, 30, kill)
    assert (result.killed, result.exit_code, result.frozen, kills) == (False, 0, False, [])


async def test_past_the_grace_period_it_is_killed_and_its_exit_awaited() -> None:
    killed = asyncio.Event()

    async def exited() -> int | None:
        await killed.wait()  # it ignores its stop signal: only the kill ends it
        return 137

    async def kill() -> None:
        killed.set()

    result = await grace.then_kill(exited, 0.01, kill)
    assert (result.killed, result.exit_code) == (True, 137)


async def test_a_wait_that_never_ends_gives_no_exit_code() -> None:
    async def never() -> int | None:
        await asyncio.Event().wait()
        return 0

    async def exited() -> int | None:
        return 3

    assert await grace.at_most(0.01, never) is None
    assert await grace.at_most(30, exited) == 3
