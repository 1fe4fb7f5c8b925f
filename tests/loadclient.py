"""A steady HTTP request load, for the rollout tests (tests/integration, tests/docker, tests/e2e) and
``bench/rollout.py``.

``clients`` threads send GET ``path`` to ``host:port`` (or to the unix socket ``unix``, as a proxy dials a host
process's) until stopped, each bounded in count (``limit``) and time (``seconds``): a new connection per request
(a new visitor each time, the default) or one kept alive per thread (``keep_alive``: a new one after any
failure). An answer is a success when its status is 200 and ``read`` (the
body -> the key it is counted under in ``answers``; the body's text by default) does not raise ValueError or
KeyError; anything else is a failure, kept with its time (epoch seconds) and why. Standard library only.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

Read = Callable[[bytes], str]


class Failure(NamedTuple):
    at: float  # time.time() when the request was sent
    why: str


def text(body: bytes) -> str:
    return body.decode(errors="replace").strip()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class Load:
    """Requests from threads while the ``with`` block runs (``total``, ``answers``, ``failures``, ``mark``)."""

    def __init__(
        self,
        port: int | None = None,
        path: str = "/",
        *,
        clients: int = 2,
        keep_alive: bool = False,
        read: Read = text,
        host: str = "127.0.0.1",
        unix: Path | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        seconds: float = 120.0,
        limit: int = 20_000,
    ) -> None:
        self.port, self.path, self.host, self.unix, self.headers = port, path, host, unix, dict(headers or {})
        self.keep_alive, self.read, self.timeout = keep_alive, read, timeout
        self.seconds, self.limit = seconds, limit
        self.sent = 0
        self.answers: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        deadline = time.monotonic() + self.seconds
        connection: http.client.HTTPConnection | None = None
        for _ in range(self.limit):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            sent = time.time()
            try:
                if connection is None:
                    connection = self._connection()
                connection.request("GET", self.path, headers=self.headers)
                answer = connection.getresponse()
                body = answer.read()
                if answer.status != 200:
                    raise ValueError(f"answered {answer.status}: {body[:80]!r}")
                key, failure = self.read(body), None
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                key, failure = None, Failure(sent, f"{type(exc).__name__}: {exc}")
            with self.lock:
                self.sent += 1
                if failure is None:
                    self.answers[str(key)] += 1
                else:
                    self.failures.append(failure)
            if connection is not None and (failure is not None or not self.keep_alive):
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self.unix is not None:
            return _UnixConnection(self.unix, self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def total(self) -> int:
        """Requests answered so far."""
        with self.lock:
            return sum(self.answers.values())

    def count(self, key: str) -> int:
        with self.lock:
            return self.answers[key]

    def mark(self) -> tuple[int, int]:
        """(requests sent, failed) so far."""
        with self.lock:
            return self.sent, len(self.failures)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 10)
