"""Live note events for WebSocket clients: the event shapes and an in-process broadcaster.

The broadcaster fans each event out to every subscriber of THIS process, through one bounded queue per
subscriber. It is in memory on purpose: the backend runs as one process. Several workers or replicas would each
see only their own writes; they would need a shared channel such as PostgreSQL LISTEN/NOTIFY (publish with
`NOTIFY notes, '<json>'` after commit, and one `LISTEN notes` connection per process feeding `publish`).

Knows nothing of WebSockets (see `api.routes.ws`) or of the database.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from app.schemas import NotePublic

NoteChange = Literal["note.created", "note.updated"]

# A client this many events behind is dropped (closed with CLOSE_TOO_SLOW) rather than letting its queue grow.
QUEUE_SIZE = 256
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_TOO_SLOW = 1013  # "try again later": the client fell behind

log = logging.getLogger(__name__)


def note_changed(change: NoteChange, note: NotePublic) -> dict[str, Any]:
    return {"type": change, "note": note.model_dump(mode="json")}


def note_deleted(note_id: int) -> dict[str, Any]:
    return {"type": "note.deleted", "id": note_id}


class Subscription:
    """One client's queue of serialised events. Iterating ends when the broadcaster drops or closes it."""

    def __init__(self, queue_size: int) -> None:
        # Unbounded underneath, so that the end marker always fits; `offer` keeps to `queue_size`.
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queue_size = queue_size
        self._ended = False
        self.close_code = CLOSE_GOING_AWAY

    def offer(self, message: str) -> bool:
        """Queues the message; False if `queue_size` messages are already waiting."""
        if self._queue.qsize() >= self._queue_size:
            return False
        self._queue.put_nowait(message)
        return True

    def end(self, close_code: int, *, discard: bool) -> None:
        """Ends the iteration, after what is queued unless `discard`."""
        if self._ended:
            return
        self._ended = True
        self.close_code = close_code
        while discard and not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[str]:
        while (message := await self._queue.get()) is not None:
            yield message


class Broadcaster:
    """Sends every published event to every current subscriber. Use it from the event loop's thread only."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription(self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def publish(self, event: dict[str, Any]) -> None:
        """Queues the event for every subscriber (async so that FastAPI's background tasks run it on the loop)."""
        message = json.dumps(event, separators=(",", ":"))
        for subscription in list(self._subscriptions):
            if not subscription.offer(message):
                log.warning("A WebSocket client fell %d events behind; closing it", self._queue_size)
                self._subscriptions.discard(subscription)
                subscription.end(CLOSE_TOO_SLOW, discard=True)

    def close(self) -> None:
        """Ends every subscription once what is queued is sent, for shutdown."""
        for subscription in self._subscriptions:
            subscription.end(CLOSE_GOING_AWAY, discard=False)
        self._subscriptions.clear()
