"""The broadcaster alone: fan-out, a slow client dropped, shutdown ending every subscription."""

import json
from collections.abc import AsyncIterator

import anyio
import pytest

from app.events import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Broadcaster, note_deleted

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def drain(messages: AsyncIterator[str]) -> list[int]:
    """The note ids of the messages, until the subscription ends."""
    with anyio.fail_after(2):
        return [json.loads(message)["id"] async for message in messages]


async def test_every_subscriber_gets_every_event() -> None:
    broadcaster = Broadcaster()
    with broadcaster.subscribe() as first, broadcaster.subscribe() as second:
        assert broadcaster.subscriber_count == 2
        await broadcaster.publish(note_deleted(1))
        await broadcaster.publish(note_deleted(2))
        broadcaster.close()
        assert await drain(aiter(first)) == [1, 2]
        assert await drain(aiter(second)) == [1, 2]
        assert first.close_code == CLOSE_GOING_AWAY
    assert broadcaster.subscriber_count == 0


async def test_leaving_unsubscribes() -> None:
    broadcaster = Broadcaster()
    with broadcaster.subscribe():
        pass
    assert broadcaster.subscriber_count == 0
    await broadcaster.publish(note_deleted(1))  # nobody listening is fine


async def test_a_client_that_falls_behind_is_dropped_alone() -> None:
    broadcaster = Broadcaster(queue_size=2)
    with broadcaster.subscribe() as slow, broadcaster.subscribe() as fast:
        fast_messages = aiter(fast)
        for note_id in (1, 2):
            await broadcaster.publish(note_deleted(note_id))
            assert json.loads(await anext(fast_messages))["id"] == note_id
        await broadcaster.publish(note_deleted(3))  # the slow queue already holds 2
        assert await drain(aiter(slow)) == []  # what it had is stale: dropped, not delivered
        assert slow.close_code == CLOSE_TOO_SLOW
        assert broadcaster.subscriber_count == 1
        await broadcaster.publish(note_deleted(4))
        broadcaster.close()
        assert await drain(fast_messages) == [3, 4]
