"""Talking to an instance's daemon: find it, start it when needed, send one request, read one reply.

The daemon is started detached (its own session, output in ``logs/daemon.log``) so it outlives the command
that started it. A daemon that was killed is replaced here: the new one re-adopts what the old one ran.
``up`` starts a daemon's interpreter ahead (``prestart``), before it reads the configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unistack.control import state, wire
from unistack.errors import DaemonError, DaemonNotAnswering, UnistackError

if TYPE_CHECKING:
    from unistack.engine.states import ServiceRow

SPAWN_TIMEOUT = 20.0
ANSWER_WITHIN = 10.0  # seconds a live daemon may take to answer ping or ps (its loop is never blocked that long)
LOGS_WITHIN = 2.0  # ... to answer `logs --tail N` before the CLI reads the logs itself
SPAWN_POLL = 0.003  # seconds between attempts to reach a daemon that is starting (a failed connect costs ~10 us)

# the daemon interpreter started ahead by ``prestart``, until ``spawn`` takes it or ``discard_standby``
_standby: subprocess.Popen[bytes] | None = None


class RemoteError(UnistackError):
    """The daemon refused a request; carries the daemon's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DaemonClient:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state.socket_path(state_dir)

    def call(self, cmd: str, *, answer_within: float | None = None, **args: Any) -> Any:
        """Send one request and return its result; raise RemoteError with the daemon's message on failure.

        ``answer_within`` (seconds) bounds the wait for a request that a live daemon answers at once (``ping``,
        ``ps``): a daemon that holds the instance but does not answer is then named, with the way out.
        """
        try:
            data = wire.exchange(str(self.path), {"cmd": cmd, **args}, answer_within)
        except TimeoutError as exc:
            raise self._not_answering(answer_within or 0) from exc
        except OSError as exc:
            raise DaemonError(f"lost the supervisor daemon of {self.state_dir} ({exc.strerror or exc})") from exc
        if not data:
            raise DaemonError(f"the supervisor daemon of {self.state_dir} closed the connection; see {self.log}")
        reply = json.loads(data)
        if not reply.get("ok"):
            raise RemoteError(reply.get("error", "unknown error"), int(reply.get("exit_code", 1)))
        return reply.get("result")

    def ps(self, services: Sequence[str] = ()) -> list[ServiceRow]:
        """The instance's services as ``ps`` shows them (only ``services`` when some are named)."""
        from unistack.engine.states import rows_from

        rows = rows_from(self.call("ps", answer_within=ANSWER_WITHIN))
        return [row for row in rows if not services or row.service in services]

    def logs(self, runtime: str, services: Sequence[str], tail: int) -> list[tuple[str, str]] | None:
        """The last ``tail`` lines of each service's log as (service, text), read by the daemon when it runs the
        instance on ``runtime``; None when it does not (then read them here)."""
        lines = self.call("logs", answer_within=LOGS_WITHIN, runtime=runtime, services=list(services), tail=tail)
        return None if lines is None else [(service, text) for service, text in lines]

    def _not_answering(self, seconds: float) -> DaemonNotAnswering:
        pid = (state.read_state(self.state_dir) or {}).get("daemon_pid")
        who = f"(pid {pid}) " if pid else ""
        return DaemonNotAnswering(
            f"the supervisor daemon of {self.state_dir} {who}does not answer within {seconds:g} s: it is stopped or "
            f"hung. If you stopped it, `kill -CONT {pid or 'PID'}`; otherwise `kill -9 {pid or 'PID'}`: the next "
            "command starts a new daemon, which re-adopts the services (they keep running)"
        )

    @property
    def log(self) -> Path:
        return state.daemon_log(self.state_dir)

    def responds(self) -> bool:
        """True when a daemon answers; one running older unistack code hands over to a new one first."""
        try:
            info = self.call("ping", answer_within=ANSWER_WITHIN)
        except DaemonNotAnswering:
            raise  # another daemon would only wait for its lock
        except (DaemonError, RemoteError, ValueError):
            return False
        if info.get("code") == state.code_fingerprint():
            return True
        try:
            self.call("handover")
        except RemoteError:
            return True  # a daemon too old to hand over: keep using it
        except DaemonError:
            pass
        deadline = time.monotonic() + 10
        while state.daemon_alive(self.state_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        return False


def existing(state_dir: Path) -> DaemonClient | None:
    """The running daemon; if a daemon died but left services recorded, a new one that re-adopts them."""
    client = DaemonClient(state_dir)
    if client.responds():
        return client
    saved = state.read_state(state_dir)
    if saved and saved.get("up"):
        try:
            return spawn(state_dir)
        except DaemonError:
            if saved.get("down") and not (state.read_state(state_dir) or {}).get("up"):
                return None  # the new daemon finished the `down` its predecessor began, and exited
            raise
    return None


def ensure(state_dir: Path) -> DaemonClient:
    """The running daemon, started when there is none."""
    client = DaemonClient(state_dir)
    if client.responds():
        return client
    return spawn(state_dir)


def prestart() -> None:
    """Start a daemon's interpreter now, before the instance is even known: ``spawn`` will then only say go.

    Starting Python and importing the daemon's code (asyncio, the engine, the runtimes) takes 0.2-0.4 s on a small
    machine, longer than the client's own loading of the files; started first, it runs in parallel with all of
    it. The process waits on its stdin with nothing touched (no folder, no lock, no log) until ``spawn`` tells
    it which instance to run, or it is discarded (an invalid configuration, or an instance whose daemon already
    runs, leaves nothing behind).
    """
    global _standby
    if _standby is not None:
        return
    with contextlib.suppress(OSError):  # spawn starts one the usual way
        _standby = subprocess.Popen(
            [sys.executable, "-m", "unistack.control.daemon", "--standby"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )


def standby_for(state_dir: Path) -> None:
    """Called once the instance is known: one whose daemon already runs needs no other (discarded at once, so
    that it stops competing for the CPU with the client)."""
    if state.daemon_alive(state_dir):
        discard_standby()


def discard_standby() -> None:
    """Stop the daemon started ahead that no command needed (we started it: it is ours to kill)."""
    global _standby
    proc, _standby = _standby, None
    if proc is None:
        return
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _go(state_dir: Path) -> subprocess.Popen[bytes] | None:
    """The daemon started ahead, told to go and run ``state_dir``; None when there is none (or it died)."""
    global _standby
    proc = _standby
    path = os.fsencode(state_dir)
    if proc is None or proc.stdin is None or b"\n" in path:
        discard_standby()
        return None
    _standby = None
    try:
        proc.stdin.write(b"go " + path + b"\n")
        proc.stdin.close()
    except OSError:  # it died (its output went nowhere): start one the usual way, which logs why
        _standby = proc
        discard_standby()
        return None
    return proc


def spawn(state_dir: Path) -> DaemonClient:
    client = DaemonClient(state_dir)
    log = state.daemon_log(state_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    (state_dir / "run").mkdir(mode=0o700, exist_ok=True)
    proc = ahead = None
    if not state.daemon_alive(state_dir):
        proc = ahead = _go(state_dir)
        if proc is None:
            proc = _start_daemon(state_dir, log)
    deadline = time.monotonic() + SPAWN_TIMEOUT
    while time.monotonic() < deadline:
        if client.responds():
            return client
        if proc is not None and proc.poll() is not None and not state.daemon_alive(state_dir):
            if proc is not ahead:
                break
            proc = _start_daemon(state_dir, log)  # the one started ahead died (perhaps before it logged why)
        time.sleep(SPAWN_POLL)
    tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
    raise DaemonError(
        f"the supervisor daemon for {state_dir} did not start; its log {log} ends with:\n  " + "\n  ".join(tail)
    )


def _start_daemon(state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "unistack.control.daemon", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def pid_of(state_dir: Path) -> int | None:
    saved = state.read_state(state_dir)
    pid = saved.get("daemon_pid") if saved else None
    return int(pid) if pid and _running(int(pid)) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
