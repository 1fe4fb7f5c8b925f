"""Starting host processes for the process runtime: each in its own session, from threads of its own.

Owns the spawn threads (``Popen`` blocks until the child has exec'ed, 1-20 ms on a busy machine, so a layer's
spawns overlap and the event loop goes on meanwhile; never asyncio's default executor, which other work shares),
a spawn undone when its caller was cancelled meanwhile (its child killed and reaped, its descriptor closed, once
the thread is done), a service's command, setup or install step started with its output appended to the
service's log file through a log writer process of its own (``logwriter.py``, so a full disk drops lines instead
of failing the service), under the keeper of its exit code when asked (``exitkeeper.py``), and a failure to
start said with the key to fix (a command or ``working_dir`` not found is a ``PermanentFailure``). Never waits
for, signals or decides anything about what it started (``children.py`` and ``process_exits.py`` do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from unistack.config.model import Project
from unistack.errors import PermanentFailure, RuntimeFailure
from unistack.runtimes.children import (
    Child,
    Created,
    popen_in_session,
    popen_kept,
    start_log_writer,
    timed,
    undo_spawn,
)

SPAWN_THREADS = 8  # Popen blocks until the child has exec'ed (1-20 ms on a busy machine): a layer's spawns overlap

_POOL_LOCK = threading.Lock()


class Spawner:
    """The spawn threads of one runtime, made on first use."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        """The threads that run ``Popen``: never asyncio's default executor, which other work shares."""
        with _POOL_LOCK:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="unistack-spawn")
            return self._executor

    async def popen(self, create: Callable[[], Created]) -> Child:
        """Run ``create`` (a ``Popen`` and the descriptor its output is read from, if any) in a spawn thread.

        The event loop goes on meanwhile. A cancelled caller still gets its child killed and reaped, and its
        descriptor closed, once the thread is done (never while the thread still uses what it opened). The
        child's ``began`` is the wall-clock time the thread began to create it.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool(), timed, create)
        try:
            began, (popen, fd, writer) = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(undo_spawn)
            raise
        child = Child(popen, fd, loop, began)
        if writer is not None:
            child.writer = Child(writer, None, loop, began)
        return child

    async def spawn(
        self,
        project: Project,
        service: str,
        log_path: Path,
        env: dict[str, str],
        argv: tuple[str, ...],
        cwd: Path,
        what: str,
        kept: bool = False,
    ) -> Child:
        """Start ``argv`` in its own session, its output appended to ``log_path``; ``kept``: under the keeper of
        its exit code (``exitkeeper.py``; the Child is the keeper, its ``service_pid`` the service)."""
        service_pid: list[int] = []

        def create() -> Created:
            try:
                log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise RuntimeFailure(f"cannot open the log file {log_path}: {exc.strerror}") from exc
            writer, out_fd = start_log_writer(project.state_dir, log_path, log_fd) or (None, log_fd)
            try:
                if not kept:
                    return popen_in_session(argv, cwd, env, out_fd), None, writer
                popen, pid = popen_kept(argv, cwd, env, out_fd, project.run_dir, service)
                service_pid.append(pid)
                return popen, None, writer
            except OSError as exc:
                if writer is not None:  # it ends at once: nobody else holds the pipe's other end
                    os.close(out_fd)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        writer.wait(5)
                    writer = None
                raise _spawn_failure(exc, argv, cwd, what) from exc
            finally:
                os.close(log_fd)
                if writer is not None:
                    os.close(out_fd)  # the writer sees the end of file once the service's side is closed too

        child = await self.popen(create)
        child.service_pid = service_pid[0] if service_pid else child.pid
        return child


def _spawn_failure(exc: OSError, argv: Sequence[str], cwd: Path, what: str) -> RuntimeFailure:
    if isinstance(exc, FileNotFoundError):
        if not Path(cwd).is_dir():
            return PermanentFailure(f"working_dir {cwd} does not exist")
        missing = exc.filename if exc.filename else argv[0]
        return PermanentFailure(f"command not found: {missing!r} (x-unistack.process.{what})")
    return RuntimeFailure(f"cannot run {argv[0]!r} (x-unistack.process.{what}): {exc.strerror}")
