"""Service output on Docker: the build log file, then the container's own log, read back and followed.

Owns finding a service's container (by this instance's labels, so a recreated container is found too),
reading its log through the engine (``docker logs``, so restarts of the same container continue one log),
and following it: one daemon thread per service streams the log with timestamps, resumes after the container
stops, restarts or is recreated, and drops lines it already delivered (by their engine timestamps). The
build log (``logs/<service>.build.log``, written by setup and installs through ``BuildLog``) comes first and is
followed as a file. Never starts, stops or changes a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from unistack.config.model import Project
from unistack.runtimes import logfiles
from unistack.runtimes.docker import resources
from unistack.runtimes.docker.engine import Errors, close_stream, failure, in_thread, parse_time_ns
from unistack.runtimes.logfiles import LogLine
from unistack.runtimes.logwriter import Appender

POLL = 0.3  # seconds between looks for a container that is missing or stopped
ALL = 10**9


def build_log_path(project: Project, service: str) -> Path:
    return project.logs_dir / f"{service}.build.log"


class BuildLog:
    """Appends lines to a build log, its folder made first (OSError when it cannot be opened), one write each
    (setup's ``emit`` runs in a build thread); lines a full disk refuses are dropped and counted
    (``logwriter.Appender``), so a build never fails for its log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: Appender | None = Appender(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        self._lock = threading.Lock()

    def emit(self, line: str) -> None:
        with self._lock:
            if self._out is not None:
                self._out.write((line.rstrip("\n") + "\n").encode("utf-8", "replace"))

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                out, self._out = self._out, None
                out.finish()
                os.close(out.fd)


def find_container(client: docker.DockerClient, project: Project, service: str) -> dict[str, Any] | None:
    """The service's container of this instance (running first, else the newest), as the engine lists it."""
    labels = {**resources.instance_labels(project.name, project.state_dir), resources.SERVICE_LABEL: service}
    rows = client.api.containers(all=True, filters={"label": resources.label_filters(labels)})
    if not rows:
        return None
    rows.sort(key=lambda row: (row.get("State") == "running", row.get("Created", 0)), reverse=True)
    return dict(rows[0])


def split_stamped(line: str) -> tuple[int, str]:
    """``<RFC 3339 time> <text>`` (``docker logs --timestamps``) -> (nanoseconds, text)."""
    stamp, _, text = line.partition(" ")
    try:
        return parse_time_ns(stamp), text
    except ValueError:
        return 0, line


def decode_lines(data: bytes) -> list[str]:
    return [line.rstrip("\r") for line in data.decode("utf-8", "replace").split("\n")]


def container_history(client: docker.DockerClient, container_id: str, lines: int | None) -> list[tuple[int, str]]:
    """The last ``lines`` lines (all when None) of a container's log, each with its engine timestamp."""
    data = client.api.logs(container_id, timestamps=True, tail="all" if lines is None else lines)
    stamped = [split_stamped(line) for line in decode_lines(data) if line]
    return stamped


def history(
    client: docker.DockerClient, project: Project, service: str, lines: int | None
) -> tuple[list[str], str, int]:
    """The build log's lines then the container's (the last ``lines`` of both together, all when None).

    Also returns the container id and the time of its last line, where following goes on from.
    """
    if lines == 0:
        built: list[str] = []
    else:
        built = logfiles.tail_lines(build_log_path(project, service), ALL if lines is None else lines, chunk=1 << 62)
    row, stamped = None, []
    if lines != 0:  # with none wanted, following starts from now on its own (``Follower.begin_ns``)
        for _ in range(3):  # the container found may be removed (recreated) before its log is read: look again
            row = find_container(client, project, service)
            try:
                stamped = container_history(client, row["Id"], lines) if row is not None else []
                break
            except docker.errors.NotFound:
                row, stamped = None, []
    texts = built + [text for _, text in stamped]
    if lines is not None:
        texts = texts[-lines:] if lines else []
    return texts, (row["Id"] if row else ""), (stamped[-1][0] if stamped else 0)


def _history(
    client: Callable[[], docker.DockerClient], project: Project, service: str, lines: int | None
) -> tuple[list[str], str, int]:
    return history(client(), project, service, lines)


class Follower:
    """One daemon thread delivering a service's new container log lines, across restarts and recreation."""

    def __init__(
        self,
        client: docker.DockerClient,
        project: Project,
        service: str,
        begin_ns: int,
        seen: dict[str, int],
        deliver: Callable[[str], None],
    ) -> None:
        self.client, self.project, self.service = client, project, service
        self.begin_ns = begin_ns  # engine time when following began: anything later is new
        self.seen = dict(seen)  # container id -> time of the last line delivered
        self.deliver = deliver
        self.stopped = threading.Event()
        self._stream: Any = None
        self.thread = threading.Thread(target=self._run, name=f"unistack-logs-{service}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        stream = self._stream
        if stream is not None:
            close_stream(stream)

    def _run(self) -> None:
        while not self.stopped.is_set():
            began = time.monotonic()
            try:
                row = find_container(self.client, self.project, self.service)
                if row is not None:
                    self._stream_from(row["Id"])
            except Exception:
                pass  # the engine went away or the container with it: look again
            # a stream of a running container ends on a read timeout or a stop: go on at once, never spin
            self.stopped.wait(max(0.0, POLL - (time.monotonic() - began)))

    def _stream_from(self, container_id: str) -> None:
        last = max(self.seen.get(container_id, 0), self.begin_ns)
        since = max((last - 1_000_000) / 1e9, 1e-9)  # a millisecond early; delivered lines are dropped below
        stream = self.client.api.logs(container_id, stream=True, follow=True, timestamps=True, since=since)
        self._stream = stream
        partial = b""
        try:
            if self.stopped.is_set():
                return
            for chunk in stream:
                *complete, partial = (partial + chunk).split(b"\n")
                for line in complete:
                    stamp, text = split_stamped(line.decode("utf-8", "replace").rstrip("\r"))
                    if stamp > last:
                        last = self.seen[container_id] = stamp
                        self.deliver(text)
        finally:
            self._stream = None
            close_stream(stream)


async def read_logs(
    client: Callable[[], docker.DockerClient],
    project: Project,
    services: Sequence[str],
    tail: int | None,
    follow: bool,
) -> AsyncIterator[LogLine]:
    """The services' build logs and container logs; then, if ``follow``, new lines as they come."""

    def begin() -> int:
        return parse_time_ns(str(client().api.info().get("SystemTime")))

    try:
        begin_ns = await in_thread(begin) if follow else 0
        seen: dict[str, dict[str, int]] = {}
        # every service's history asked for at once (two engine calls each), printed in the order asked
        histories = await asyncio.gather(
            *(in_thread(functools.partial(_history, client, project, service, tail)) for service in services)
        )
        for service, (texts, container_id, last) in zip(services, histories, strict=True):
            if container_id:
                seen[service] = {container_id: last}
            for text in texts:
                yield LogLine(service, text)
    except Errors as exc:
        raise failure("cannot read the logs from the Docker engine", exc) from exc
    if not follow:
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[LogLine] = asyncio.Queue()

    def deliverer(service: str) -> Callable[[str], None]:
        def deliver(text: str) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, LogLine(service, text))

        return deliver

    followers = [Follower(client(), project, s, begin_ns, seen.get(s, {}), deliverer(s)) for s in services]
    stop = asyncio.Event()
    files = [
        asyncio.create_task(_follow_file(service, build_log_path(project, service), queue, stop))
        for service in services
    ]
    for follower in followers:
        follower.start()
    try:
        while True:
            yield await queue.get()
    finally:
        stop.set()
        for follower in followers:
            follower.stop()
        for task in files:
            task.cancel()


async def _follow_file(service: str, path: Path, queue: asyncio.Queue[LogLine], stop: asyncio.Event) -> None:
    async for line in logfiles.follow([(service, path)], 0, True, stop):
        queue.put_nowait(line)


def tail_lines(client: docker.DockerClient, project: Project, service: str, lines: int) -> list[str]:
    return history(client, project, service, lines)[0]
