"""The host processes the daemon starts (services, setup steps, installs, probes), once started: reaped by the
event loop through pidfds (no thread per child), polled where the kernel has none; their output read from a pipe
(probes) or written into the log by a log writer of their own (``logwriter.py``); a spawn undone when its caller
was cancelled. Never decides what to start or when: ``process.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

OUTPUT_LIMIT = 4000  # characters of a probe's output kept
CHILD_POLL = (0.01, 0.25)  # first and longest interval between polls of a child when the kernel has no pidfds
WRITER_DRAIN = 0.25  # seconds a log writer is given to write what a process printed last, once it exited
LOG_WRITER = Path(__file__).with_name("logwriter.py")
EXIT_KEEPER = Path(__file__).with_name("exitkeeper.py")
_KEPT_OUTPUT = 4 * OUTPUT_LIMIT + 8  # bytes: enough for OUTPUT_LIMIT whole characters of UTF-8 after a cut

# a process, the descriptor its output is read from (probes), and the log writer its output goes through (services)
Created = tuple[subprocess.Popen[bytes], int | None, subprocess.Popen[bytes] | None]


def popen_in_session(argv: Sequence[str], cwd: Path, env: dict[str, str], out_fd: int) -> subprocess.Popen[bytes]:
    """``argv`` in a session (and process group) of its own, stdout and stderr to ``out_fd``, no stdin."""
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=out_fd, start_new_session=True
    )


def popen_kept(
    argv: Sequence[str], cwd: Path, env: dict[str, str], out_fd: int, folder: Path, service: str
) -> tuple[subprocess.Popen[bytes], int]:
    """``argv`` under the keeper of its exit code (``exitkeeper.py``), in a session of its own as
    ``popen_in_session`` starts it; returns the keeper and the service's own pid (the keeper's child). A command
    that cannot be started raises the ``OSError`` the keeper met, as ``Popen`` would have raised it."""
    read_fd, write_fd = os.pipe()
    try:
        keeper = [sys.executable, "-I", "-S", str(EXIT_KEEPER), str(write_fd), str(folder), service, "--", *argv]
        popen = subprocess.Popen(
            keeper,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=out_fd,
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as report:  # its end of file: the keeper wrote its line, or died
        words = report.readline().decode("utf-8", "replace").split(" ", 2)
    if words[0] == "pid" and len(words) == 2 and words[1].strip().isdigit():
        return popen, int(words[1])
    popen.wait()
    if words[0] == "error" and len(words) == 3 and words[1].isdigit():
        raise OSError(int(words[1]), words[2].strip(), argv[0])
    raise OSError(0, f"its exit code's keeper ended with {popen.returncode} before it started it", argv[0])


def start_log_writer(state_dir: Path, log_path: Path, log_fd: int) -> tuple[subprocess.Popen[bytes], int] | None:
    """The log writer of one service process (``logwriter.py``): its stdin a new pipe, its stdout the log file.
    Returns it and the pipe's end the service writes to; None when it cannot start (the service then writes
    straight into the file, as it would without one). Its environment names the instance (so it can be found:
    ``UNISTACK_STATE_DIR``) but no service (so it is never taken for one: ``strays``)."""
    read_fd, write_fd = os.pipe()
    try:
        writer = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LOG_WRITER), log_path.name],
            stdin=read_fd,
            stdout=log_fd,
            stderr=subprocess.DEVNULL,
            env={"UNISTACK_STATE_DIR": str(state_dir)},
            start_new_session=True,
        )
    except OSError:
        os.close(write_fd)
        return None
    finally:
        os.close(read_fd)
    return writer, write_fd


class Child:
    """A child process reaped by the event loop: woken by its pidfd (no thread per child), else polled.

    It reaps its process once it exits whether or not anyone waits (the reader or poller holds it until then),
    and reads the output pipe it may have been given until end of file, keeping its last ``_KEPT_OUTPUT`` bytes.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], output_fd: int | None, loop: asyncio.AbstractEventLoop, began: float
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.service_pid = popen.pid  # a service under the keeper of its exit code: the keeper's child
        self.began = began  # wall-clock seconds, taken just before the process was created
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = -1
        self._poller: asyncio.Task[None] | None = None
        try:
            self._pidfd = os.pidfd_open(popen.pid)  # works on a zombie too: nobody else reaps this pid
        except (AttributeError, OSError):
            self._poller = loop.create_task(self._poll())
        else:
            loop.add_reader(self._pidfd, self._reap)
        self.writer: Child | None = None  # the log writer its output goes through
        self._output = bytearray()
        self._output_fd = output_fd
        self._eof: asyncio.Future[None] = loop.create_future()
        if output_fd is None:
            self._eof.set_result(None)
        else:
            os.set_blocking(output_fd, False)
            loop.add_reader(output_fd, self._read)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def _reap(self) -> None:
        code = self.popen.poll()
        if code is None:
            return  # woken early; the pidfd stays readable until the process has exited
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        if not self._exited.done():
            self._exited.set_result(code)

    async def _poll(self) -> None:
        delay = CHILD_POLL[0]
        while (code := self.popen.poll()) is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, CHILD_POLL[1])
        if not self._exited.done():
            self._exited.set_result(code)

    def _read(self) -> None:
        assert self._output_fd is not None
        try:
            data = os.read(self._output_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._output += data
            del self._output[:-_KEPT_OUTPUT]
            return
        self.close_output()

    def close_output(self) -> None:
        """Stop reading the output pipe (at its end, or when the probe is given up)."""
        if self._output_fd is not None:
            self._loop.remove_reader(self._output_fd)
            os.close(self._output_fd)
            self._output_fd = None
        if not self._eof.done():
            self._eof.set_result(None)

    async def wait(self) -> int:
        """The raw return code (``-N`` when killed by signal N). Any number of callers may wait, and be cancelled."""
        return await asyncio.shield(self._exited)

    async def output_written(self, timeout: float = WRITER_DRAIN) -> None:
        """Once the process has exited: wait (up to ``timeout``) until its log writer has written everything,
        which it has when it ends (a process it left behind that still holds the output keeps it going)."""
        if self.writer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.writer.wait()

    async def communicate(self) -> bytes:
        """The (last ``_KEPT_OUTPUT`` bytes of) output once the pipe is at its end and the process has exited."""
        await asyncio.shield(self._eof)
        await self.wait()
        return bytes(self._output)


def timed(create: Callable[[], Created]) -> tuple[float, Created]:
    return time.time(), create()


def undo_spawn(future: asyncio.Future[tuple[float, Created]]) -> None:
    """The caller of a spawn was cancelled while the thread ran ``Popen``: kill what it started, and reap it."""
    if future.cancelled() or future.exception() is not None:
        return
    began, (popen, fd, writer) = future.result()
    signal_group(popen.pid, signal.SIGKILL)
    if fd is not None:
        os.close(fd)
    loop = asyncio.get_running_loop()
    Child(popen, None, loop, began)
    if writer is not None:
        Child(writer, None, loop, began)  # it ends once the killed group's output is closed


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
