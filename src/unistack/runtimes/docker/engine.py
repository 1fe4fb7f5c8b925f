"""The connection to the Docker Engine: one lazy SDK client, blocking calls in threads, errors translated.

Owns creating the docker SDK client from the environment (``DOCKER_HOST`` or the default socket) with a clear
failure when no engine answers, running blocking SDK calls in their own daemon threads (never asyncio's
default executor, which the daemon needs for its own work, and never a pool that interpreter exit would wait
for), translating docker and requests errors into ``RuntimeFailure``, and the exit watcher: one thread that
reads the engine's ``die`` events and wakes whoever waits for that container. Never decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import docker.errors  # also binds `docker`; a bare `import docker` would sort as first-party (tests/docker)
import requests

from unistack.errors import RuntimeFailure

T = TypeVar("T")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
POOL_SIZE = 32  # connections: probes, waits and log streams of a whole stack at once
RECHECK = 5.0  # seconds between inspections of a waited container when no event arrives
ENGINE_LOST = 30.0  # seconds without an answer after which a waited container counts as gone
CONNECT_WAIT = 2.0  # seconds a first wait gives the events stream to connect

Errors = (docker.errors.DockerException, requests.RequestException)


def engine_address(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def is_local(environ: Mapping[str, str]) -> bool:
    """True when the engine runs on this machine (its ports and host folders are ours)."""
    return engine_address(environ).startswith("unix://")


def explain(exc: BaseException) -> str:
    """The engine's own sentence for an error, without the HTTP noise around it."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def failure(doing: str, exc: BaseException) -> RuntimeFailure:
    if isinstance(exc, RuntimeFailure):
        return exc
    return RuntimeFailure(f"{doing}: {explain(exc)}")


def connect(environ: Mapping[str, str]) -> docker.DockerClient:
    """A client for the engine named by ``environ``; RuntimeFailure with the fix when none answers."""
    problem = socket_problem(engine_address(environ))
    if problem is not None:  # said here: the SDK would leak the socket of its failed connection attempt
        raise unreachable(environ, problem)
    try:
        client = docker.DockerClient.from_env(environment=dict(environ), max_pool_size=POOL_SIZE)
    except Errors as exc:
        raise unreachable(environ, exc) from exc
    try:
        client.ping()
    except Errors as exc:
        client.close()
        raise unreachable(environ, exc) from exc
    return client


def client(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (the local socket by default), checked with a ping, whose calls
    give up after ``timeout`` seconds; RuntimeFailure with the fix when none answers."""
    connected = connect(os.environ)
    connected.api.timeout = int(timeout)
    return connected


def socket_problem(address: str) -> OSError | None:
    """Why nothing answers on a ``unix://`` engine socket (None: something listens, or not a unix socket)."""
    if not address.startswith("unix://"):
        return None
    path = address.removeprefix("unix://")
    if not Path(path).exists():
        return FileNotFoundError(f"{path} does not exist")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return exc
    return None


def unreachable(environ: Mapping[str, str], exc: BaseException) -> RuntimeFailure:
    where = engine_address(environ)
    source = "DOCKER_HOST" if environ.get("DOCKER_HOST") else "the default socket (DOCKER_HOST is not set)"
    return RuntimeFailure(
        f"no Docker engine answers at {where} ({source}): {_short(exc)}; "
        "start dockerd (or point DOCKER_HOST at a running engine) or use --runtime process"
    )


def _short(exc: BaseException) -> str:
    """``[Errno 111] Connection refused`` out of the layers of wrapping that requests and urllib3 add."""
    text = explain(exc)
    match = re.search(r"\[Errno \d+\] [^')\"]+", text) if isinstance(exc, Errors) else None
    return match.group(0) if match else text[:200]


def close_stream(stream: Any) -> None:
    """Close an SDK stream from any thread: its socket (which unblocks a reader) and its HTTP response.

    ``CancellableStream.close`` shuts the socket but leaves the response's file open, which leaks the socket.
    """
    with contextlib.suppress(Exception):
        stream.close()
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()


def parse_time(text: str) -> float:
    """The engine's RFC 3339 time (``2024-05-01T10:00:00.123456789Z``) as epoch seconds."""
    return parse_time_ns(text) / 1e9


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def parse_time_ns(text: str) -> int:
    """The engine's RFC 3339 time as epoch nanoseconds (exact: log lines are ordered by it)."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    seconds = int(datetime.fromisoformat(match.group(1) + zone).timestamp())
    fraction = (match.group(2) or "").ljust(9, "0")[:9]
    return seconds * 1_000_000_000 + int(fraction)


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking call in its own daemon thread and await it.

    A cancelled caller stops waiting at once; the thread finishes on its own (every call it runs is bounded by
    the client's timeout or closed by its owner), and interpreter exit never waits for it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=run, name="unistack-docker", daemon=True).start()
    return await future


async def call(doing: str, fn: Callable[[], T]) -> T:
    """``in_thread``, with the SDK's and the connection's errors as RuntimeFailure saying what was being done."""
    try:
        return await in_thread(fn)
    except Errors as exc:
        raise failure(doing, exc) from exc


class ExitWatcher:
    """Waits for containers to exit: the engine's ``die`` events wake waiters, an inspection decides.

    Events are only hints (a stream can drop while the engine restarts), so every waiter inspects its
    container after registering, after each event for it and at least every ``RECHECK`` seconds.
    """

    def __init__(self, client: Callable[[], docker.DockerClient]) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._connected = threading.Event()
        self._closed = False
        self._oom_killed: set[str] = set()  # containers seen ended with State.OOMKilled, until asked
        self._unknown: dict[str, str] = {}  # why a container's exit code is unknown (``wait``: None), until asked

    async def wait(self, container_id: str) -> int | None:
        """The exit code once the container is not running; None when it is gone or cannot be known."""
        self._start()
        if not self._connected.is_set():
            await in_thread(lambda: self._connected.wait(CONNECT_WAIT))
        loop = asyncio.get_running_loop()
        lost_since: float | None = None
        while True:
            poke: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiters.setdefault(container_id, set()).add(poke)
            try:
                try:
                    running, code = await in_thread(lambda: self._state(container_id))
                    lost_since = None
                except docker.errors.NotFound:
                    self._unknown_because(container_id, "the container was removed")
                    return None
                except (RuntimeFailure, *Errors):  # the engine does not answer (connect raises RuntimeFailure)
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > ENGINE_LOST:
                        self._unknown_because(container_id, f"the engine did not answer for {ENGINE_LOST:g} s")
                        return None
                    running, code = True, None
                if not running:
                    return code
                await asyncio.wait({poke}, timeout=RECHECK)
            finally:
                with self._lock:
                    waiting = self._waiters.get(container_id, set())
                    waiting.discard(poke)
                    if not waiting:
                        self._waiters.pop(container_id, None)

    def close(self) -> None:
        self._closed = True
        stream = self._stream
        if stream is not None:
            close_stream(stream)

    def _unknown_because(self, container_id: str, why: str) -> None:
        with self._lock:
            self._unknown[container_id] = why

    def unknown_because(self, container_id: str) -> str | None:
        """Why ``wait`` returned None for the container (asked once)."""
        with self._lock:
            return self._unknown.pop(container_id, None)

    def oom_killed(self, container_id: str) -> bool:
        """Whether the container's end that ``wait`` returned was the kernel's OOM killer (asked once)."""
        with self._lock:
            if container_id in self._oom_killed:
                self._oom_killed.discard(container_id)
                return True
            return False

    def _state(self, container_id: str) -> tuple[bool, int | None]:
        state = self._client().api.inspect_container(container_id)["State"]
        code = state.get("ExitCode")
        running = bool(state.get("Running"))
        if not running and state.get("OOMKilled"):
            with self._lock:
                self._oom_killed.add(container_id)
        return running, int(code) if code is not None else None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._follow, name="unistack-docker-events", daemon=True)
                self._thread.start()

    def _follow(self) -> None:
        while not self._closed:
            try:
                stream = self._client().api.events(decode=True, filters={"type": "container", "event": "die"})
            except Exception:
                time.sleep(1.0)
                continue
            self._stream = stream
            self._connected.set()
            self._poke(None)  # anything may have exited while the stream was down
            try:
                for event in _events(stream):
                    self._poke(str(event.get("id") or (event.get("Actor") or {}).get("ID") or ""))
            except Exception:
                pass
            finally:
                self._connected.clear()
                self._stream = None
                close_stream(stream)
            if not self._closed:
                time.sleep(0.5)

    def _poke(self, container_id: str | None) -> None:
        with self._lock:
            if container_id is None:
                futures = [f for group in self._waiters.values() for f in group]
            else:
                futures = list(self._waiters.get(container_id, ()))
        for future in futures:
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_wake, future)


def _events(stream: Any) -> Iterator[dict[str, Any]]:
    for event in stream:
        if isinstance(event, dict):
            yield event


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
