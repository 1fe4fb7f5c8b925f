"""What keeps the dashboard's streams live: while at least one page is connected, one poller asks the daemon for
``ps`` every ~0.5 s (backing off up to 2 s while no daemon answers, and saying when it goes away and comes back)
and one follower reads new event-log lines; each change goes to every subscriber's queue as an SSE message. With
no page connected nothing runs, so the daemon sees no requests at all. Also the log lines of ``/api/logs/stream``
in batches. Never speaks HTTP (``server.py`` does) and never reads the instance itself (``sources.py`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from unistack.dashboard import views
from unistack.dashboard.records import DaemonInfo, LogRecord, Snapshot, encode
from unistack.dashboard.sources import EVENTS_READ, DaemonAway, Sources

POLL = 0.5  # seconds between ps requests while a page is connected
MAX_BACKOFF = 2.0  # ... at most, while the daemon is away
QUEUE = 2000  # messages a slow subscriber may have pending before the oldest are dropped
BATCH_EVERY = 0.1  # seconds: log lines are sent at most this often
BATCH_MOST = 2000  # lines per batch

Message = tuple[str, bytes]  # (SSE event name, JSON data)


class Live:
    """The shared poller and event follower behind ``/api/stream``, and the last snapshot."""

    def __init__(self, sources: Sources, clock: Callable[[], float] = time.time, poll: float = POLL) -> None:
        self.sources = sources
        self.clock = clock
        self.poll = poll
        self.history = views.History()
        self.connected: bool | None = None  # None: not known yet
        self.pid: int | None = None
        self._services: Message | None = None
        self._key = b""
        self._subscribers: set[asyncio.Queue[Message]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._loaded = False

    # ----------------------------------------------------------------- reading once

    def load_history(self) -> None:
        self.history = views.History()
        for event in self.sources.events(EVENTS_READ):
            self.history.add(event)
        self._loaded = True

    async def snapshot(self, now: float | None = None) -> Snapshot:
        """The services now (DaemonAway when no daemon answers)."""
        if not self._loaded or not self._tasks:  # no follower keeps the history current: read it again
            self.load_history()
        rows = await self.sources.rows()
        stats = await self.sources.stats(rows)
        return views.snapshot(rows, self.sources.needs, stats, self.history, self.clock() if now is None else now)

    def daemon(self) -> DaemonInfo:
        return DaemonInfo(pid=self.pid if self.connected else self.sources.daemon_pid(), connected=bool(self.connected))

    # ----------------------------------------------------------------- subscribing

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Message]]:
        """A queue of SSE messages: the services and the daemon's presence first, then every change."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE)
        if not self._subscribers:
            self._start()
        else:
            if self.connected is not None:
                queue.put_nowait(("daemon", encode(self.daemon())))
            if self._services is not None:
                queue.put_nowait(self._services)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            if not self._subscribers:
                await self._stop()

    def _start(self) -> None:
        self.load_history()  # what happened while no page looked
        self.connected, self._services, self._key = None, None, b""
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._follow_events())]

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _send(self, message: Message) -> None:
        for queue in self._subscribers:
            if queue.full():  # a page that does not read: it loses its oldest messages, never the server its memory
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def _poll(self) -> None:
        delay = self.poll
        while True:
            try:
                now = self.clock()
                snap = await self.snapshot(now)
            except DaemonAway:
                if self.connected is not False:
                    self.connected, self.pid = False, None
                    self._send(("daemon", encode(self.daemon())))
                delay = min(max(delay * 2, self.poll), MAX_BACKOFF)
            else:
                if self.connected is not True:
                    self.connected, self.pid = True, self.sources.daemon_pid()
                    self._send(("daemon", encode(self.daemon())))
                delay = self.poll
                key = encode(views.snapshot_without_uptime(snap))
                if key != self._key:
                    self._key = key
                    self._services = ("services", encode(snap))
                    self._send(self._services)
            await asyncio.sleep(delay)

    async def _follow_events(self) -> None:
        async for event in self.sources.follow_events():
            self.history.add(event)
            self._send(("event", encode(event)))


async def batches(
    lines: AsyncIterator[LogRecord], every: float = BATCH_EVERY, most: int = BATCH_MOST, idle: float = 15.0
) -> AsyncIterator[list[LogRecord]]:
    """The lines in batches, one at most every ``every`` seconds and at most ``most`` lines long (an empty batch
    after ``idle`` seconds without any: time for a ping)."""
    queue: asyncio.Queue[LogRecord | None] = asyncio.Queue(most * 4)

    async def pump() -> None:
        try:
            async for line in lines:
                await queue.put(line)
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    task = asyncio.create_task(pump())
    try:
        ended = False
        while not ended:
            try:
                first = await asyncio.wait_for(queue.get(), idle)
            except TimeoutError:
                yield []
                continue
            if first is None:
                return
            await asyncio.sleep(every)  # what else comes within the period goes in the same batch
            batch = [first]
            while len(batch) < most:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    ended = True
                    break
                batch.append(item)
            yield batch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def sse(name: str | None, data: bytes | None = None) -> bytes:
    """One server-sent event (a comment when ``name`` is None)."""
    if name is None:
        return b": ping\n\n"
    return b"event: " + name.encode() + b"\ndata: " + (data or b"null") + b"\n\n"
